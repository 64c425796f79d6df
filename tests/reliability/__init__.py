"""The reliability battery: RELIABILITY.md's 58 cases, each with its test or the reason it has none.

A case tested elsewhere in the suite is pointed to, not repeated. "Open" marks a case whose fault is known and
not yet fixed (issue 13 stays open for them).

A. Hostile feeds (test_feeds.py): 1 entity bomb, 4 empty and cut-off bodies, 5 encodings, 7 one GUID twice,
   9 an edited entry, 11 many tiny entries (the cap bounds parsing), 13 the possible-gap signal, and an
   archive dump (backfill on every poll). 2 XXE, 3 HTML or error status, 6 fallback keys, 12 dates:
   tests/test_parse.py, test_normalize.py, test_fetch.py, test_e2e.py. 8 GUID storm: tests/test_stories.py.
   10 injection made inert: tests/test_render.py (through each service's own format: issue 14).
B. HTTP faults (test_http.py): 17 conditional GET through restarts. 14, 15, 16, 20, 21, 22, 23, 24 (two at
   once per host): tests/test_fetch.py, test_pollers.py; 18, 19 (Retry-After, backoff): tests/test_decide.py.
   24's jittered start is adapted: a new feed is due at once (a desk wants its first poll now; the per-host
   and connection caps bound the burst), and every later poll comes up to 10% early at random.
C. Config (test_config.py): 28 a keyword added, 30 a target removed or its secret rotated. 25, 27:
   tests/test_reload.py; 26: tests/test_config_errors.py (no regexes or feed ids: the equivalents); 29:
   tests/test_service.py, test_store.py.
D. Notifications (test_delivery.py): 31 three failures then one message under one key, 32 a target that never
   answers, 34 one target down, 36 Apprise raising, failing, answering None, 37 a backlog drained in order
   or as one summary; twelve attempts then dead, routing, priority, the hourly cap's last slot, a secret in
   an error, one refused message holding nothing else. Open: 33 (a permanent SMTP 550 is retried like a
   transient error, ~6 hours, before it is dead; Apprise gives the code only at debug level; the operator
   notice is issue 14). 35: sends paced to each chat service's rate, a rate-limited target getting every story
   of a burst once; a 429's Retry-After is not read (Apprise does not return it), the refused wait their
   retry. 38: each message within the limit Apprise
   knows for its service, the link kept.
E. Crashes (test_restarts.py): 40 killed after the target accepted, 44 a stuck poller, 45 a full disk. 39:
   tests/test_e2e.py. 41, 42: bench/soak.py (SIGKILLs at random moments of whole-process cycles, integrity
   checked; restarts after fake hours). 43 moot: no persistent job store (three in-memory jobs, due times in
   the database).
F. Instances (test_scale.py): 49 a second instance on one SQLite file, eight writers; 50 digests across a
   daylight-saving change. 46, 47, 50's skew: tests/test_instances.py, test_store.py, test_clock.py. 48 moot:
   no pre-forked web server; every `monitor run` is an instance.
G. Resources (test_resources.py): 51 a hundred 10 MB feeds in one cycle under 512 MiB (peak RSS sampled,
   not a cgroup: none can be made here); 52 sixty days of churn under retention, a pending delivery outliving
   it. Memory over an hour at 2,000 feeds: bench/memory.py.
H. Security (test_security.py): 57 a feed's password, 58 file modes and the readable-config warning. 53,
   54, 55, 56: tests/test_fetch.py, test_config_errors.py, test_normalize.py; 57 for channels:
   tests/test_e2e.py and test_delivery.py.
"""
