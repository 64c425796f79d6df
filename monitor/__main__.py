from monitor.cli import main

if __name__ == "__main__":  # a process pool worker re-imports this module; only a real run calls main
    main()
