/*  kit.h - the qkv test kit, shared by the unit, cluster and compose suites.

    A CUnit runner whose exit status tells the truth, skipping with exit
    code 77, node processes and clusters that never outlive the test, an
    HTTP client over libcurl (one keep-alive handle per thread), JSON helpers
    over jansson, and polling with a deadline instead of fixed sleeps.
*/
#ifndef KIT_H
#define KIT_H

#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*  ---------------------------------------------------------------------
    Runner */

/* One test of a suite; a table of them ends with KIT_TESTS_END. */
typedef struct {
    const char *name;
    CU_TestFunc fn;
} kit_test_t;

#define KIT_TEST(fn)                                                           \
    { #fn, fn }
#define KIT_TESTS_END                                                          \
    { NULL, NULL }

/* Registers a suite and its tests. Returns the suite, or NULL (with the
   reason printed) when CUnit refused it. Call it from add_suites. */
CU_pSuite kit_add_suite(const char *name, CU_InitializeFunc init,
                        CU_CleanupFunc cleanup, const kit_test_t *tests);

/* Initialises CUnit, calls add_suites (which returns 0, or -1 when a
   registration failed), runs every test in verbose basic mode and cleans
   up. Returns the process exit status: 0 when every test passed, 1 when a
   test or a suite's init/cleanup failed or anything could not be
   registered. The failure counts are read before CUnit's cleanup zeroes
   them. */
int kit_run(int (*add_suites)(void));

/* Asserts that two strings are equal; NULL-safe (unlike
   CU_ASSERT_STRING_EQUAL), and prints both when they differ. */
#define KIT_ASSERT_STR(actual, expected)                                       \
    CU_assertImplementation(kit_str_eq((actual), (expected)), __LINE__,        \
                            "KIT_ASSERT_STR(" #actual ", " #expected ")",      \
                            __FILE__, "", CU_FALSE)
bool kit_str_eq(const char *actual, const char *expected);

/* Exit status ctest treats as "skipped" (SKIP_RETURN_CODE). */
#define KIT_SKIP_CODE 77

/* Prints "SKIP: why" and exits 77. When ci_must_run is true (the reason is
   something CI provides: root, a tool it installs) and the environment has
   CI=true, prints "FAIL: why" and exits 1 instead. */
void kit_skip(const char *why, bool ci_must_run) __attribute__((noreturn));

/*  ---------------------------------------------------------------------
    Time and polling */

/* Milliseconds on the monotonic clock. */
int64_t kit_now_ms(void);

/* A condition to wait for; returns true once it holds. */
typedef bool(kit_pred_fn)(void *arg);

/* Calls pred(arg) until it returns true or timeout_ms have passed, with
   short pauses between calls. Returns the last answer of pred, which is
   always called at least once and once more at the deadline. HTTP
   transport failures are not printed meanwhile (nodes may be starting).
   Gives up early, with a message, when a node we started has exited. */
bool kit_poll_until(int timeout_ms, kit_pred_fn *pred, void *arg);

/* A small deterministic PRNG (xorshift64*) for seeded random tests. */
typedef struct {
    uint64_t state;
} kit_rng_t;

void kit_rng_seed(kit_rng_t *rng, uint64_t seed);
uint64_t kit_rng_next(kit_rng_t *rng);
/* Uniform in [0, bound); bound 0 gives 0. */
uint64_t kit_rng_below(kit_rng_t *rng, uint64_t bound);

/* A random hex tag (8 characters + NUL) from /dev/urandom, for key names
   that are unique per run. */
void kit_random_tag(char tag[9]);

/*  ---------------------------------------------------------------------
    Processes: qkv-node instances. Every started node is registered and
    killed when the test process exits (normally, by exit(), or by SIGINT,
    SIGTERM or SIGHUP); a node also dies with SIGKILL if the thread that
    started it dies (PR_SET_PDEATHSIG), so start nodes from the main thread.
*/

#define KIT_MAX_ARGS 48

typedef struct {
    char name[32];            /* "leader", "follower3", ... */
    char url[256];            /* base URL, no trailing slash */
    int port;                 /* HTTP port (0 for external nodes) */
    int repl_port;            /* replication port (followers) */
    int client_port;          /* zmq-native client port (CLIENT_PORT) */
    pid_t pid;                /* 0 when not running */
    int crash_code;           /* exit code when it exited by itself (not
                                 stopped by us), else 0 */
    char *argv[KIT_MAX_ARGS]; /* owned, NULL-terminated, argv[0] the binary */
    int argc;                 /* entries used in argv */
    char log_path[512];       /* stdout and stderr go here (appended);
                                 <program>-<name>[.N].log, unique per run */
    char data_dir[512];       /* its DATA_DIR, emptied by kit_node_init:
                                 <log dir>/data/<program>-<name>[.N], with
                                 1 MiB log segments; later flags win */
} kit_node_t;

/* Deletes a directory tree (rm -rf); 0 or -1. */
int kit_rmtree(const char *path);

/* True when a node we started has exited without being stopped (looked
   at without reaping it). kit_poll_until gives up early then. */
bool kit_any_node_exited(void);

/* Returns a free TCP port on 127.0.0.1 (bound, read, closed), never the
   same one twice in a process; -1 on error. It is taken below the kernel's
   ephemeral range when there is room (so a stopped node's port is not
   taken by an outgoing connection before it restarts), else from a bind
   to port 0. */
int kit_free_port(void);

/* The qkv-node binary: env QKV_NODE_BIN. Skips the test (CI: fails) when
   unset or not executable. */
const char *kit_node_bin(void);

/* Directory for node logs: env QKV_TEST_LOG_DIR, else "./test-logs";
   created when missing. */
const char *kit_log_dir(void);

/* Sets up node: name, url http://127.0.0.1:port, argv[0] = the binary, a
   log file named after the test program and the node, and a free
   --client-port (every node binds one; its default 7000 would collide).
   No process yet. */
void kit_node_init(kit_node_t *node, const char *name, int port, int repl_port);

/* Appends arguments (copied) up to a NULL; returns 0 or -1 when full. */
int kit_node_args(kit_node_t *node, ...) __attribute__((sentinel));

/* Starts the node with its argv, environment stripped of every qkv
   setting variable, stdout and stderr appended to its log. Returns 0 or
   -1. */
int kit_node_start(kit_node_t *node);

/* True while the process runs. When it exited by itself, reaps it, says
   so and keeps its exit code in crash_code (128 + signal; -1 when the
   code was 0, for an exit was not asked for). */
bool kit_node_running(kit_node_t *node);

/* Stops the node: SIGTERM, wait up to timeout_ms, then SIGKILL. Returns
   its exit code (0 = clean), 128 + signal when a signal ended it (137 when
   SIGKILL was needed), crash_code when it had exited by itself (0 when it
   was stopped before). Prints a line and the log's tail when the exit was
   not clean. */
int kit_node_stop(kit_node_t *node, int timeout_ms);

/* kill -9: SIGKILL and reap at once (a crash: nothing is flushed). */
void kit_node_kill(kit_node_t *node);

/* The two halves of kit_node_stop, to stop several nodes at once: send
   SIGTERM, then wait (as kit_node_stop does after its SIGTERM). */
void kit_node_term(kit_node_t *node);
int kit_node_wait(kit_node_t *node, int timeout_ms);

/* Polls GET url/health until it answers 200. Returns 0, or -1 when the
   process exited or timeout_ms passed (the log's tail is printed). */
int kit_node_wait_healthy(kit_node_t *node, int timeout_ms);

/* Prints the last bytes of the node's log to stderr. */
void kit_node_print_log(const kit_node_t *node, size_t bytes);

/* Stops the node if running and frees its argv. */
void kit_node_free(kit_node_t *node);

/*  ---------------------------------------------------------------------
    Clusters: a leader (nodes[0]) and followers (nodes[1..]). */

#define KIT_MAX_NODES 16

typedef struct {
    size_t followers;               /* followers to start (< KIT_MAX_NODES) */
    int write_quorum;               /* --write-quorum; -1 leaves the default */
    int replication_timeout_ms;     /* 0: 5000 */
    int heartbeat_ms;               /* 0: 50 */
    int http_threads;               /* 0: leave the default */
    bool no_leader_url;             /* followers get no --leader-url */
    const char *const *leader_args; /* more leader flags, NULL-terminated */
    const char *const *node_args;   /* flags for every node, NULL-terminated */
    bool peers;                     /* elections: every node gets --peers (nodes
                                       named node0 .. nodeN; node0 --role leader) */
    int election_timeout_ms;        /* with peers; 0: 500 */
    const char *const *peer_keys;   /* with peers: node k's CURVE public
                                       key goes into PEERS (|key=) */
} kit_cluster_opts_t;

typedef struct {
    size_t count;                    /* nodes, leader first */
    kit_node_t nodes[KIT_MAX_NODES]; /* [0] leader, [i] follower i */
    bool external;                   /* from QKV_TEST_NODES: not ours */
} kit_cluster_t;

/* When env QKV_TEST_NODES lists base URLs (comma-separated, leader first;
   with elections, the one whose /health says it leads is put first
   wherever it is listed), fills cluster with them (external, nothing
   started) and returns 1; 0
   when unset; -1 when it does not list exactly `expected` URLs (when
   expected > 0). */
int kit_cluster_from_env(kit_cluster_t *cluster, size_t expected);

/* Starts followers then the leader on fresh ports (followers:
   --role follower --port P --repl-port R --node-id followerK
   --leader-url http://127.0.0.1:LEADERPORT; leader: --role leader
   --port P --followers tcp://127.0.0.1:R1,... [--write-quorum Q]
   --replication-timeout-ms T --heartbeat-ms H) and waits until every
   node's /health answers 200. Returns 0, or -1 (everything stopped). */
int kit_cluster_start(kit_cluster_t *cluster, const kit_cluster_opts_t *opts);

/* With peers: waits until one running node leads and serves and every
   other running node follows it (their /health say so). Returns its
   index, or -1 after timeout_ms. */
int kit_cluster_leader(kit_cluster_t *cluster, int timeout_ms);

/* Waits until every node's /health answers 200; 0 or -1. */
int kit_cluster_wait_healthy(kit_cluster_t *cluster, int timeout_ms);

/* Starts node i again with the same arguments and ports (a fresh, empty
   process) and waits for its /health. 0 or -1. */
int kit_cluster_restart(kit_cluster_t *cluster, size_t i, int timeout_ms);

/* True when every node we started is still running; names (and shows
   the log of) each one that exited. External clusters: always true. */
bool kit_cluster_alive(kit_cluster_t *cluster);

/* Stops every node we started (SIGTERM, then SIGKILL) and frees them.
   Returns the number of nodes that did not exit cleanly (exit code 0). */
int kit_cluster_stop(kit_cluster_t *cluster);

/*  ---------------------------------------------------------------------
    Writers that follow the leader (kit_writer.c) */

/* Where to send a write next after node at answered status (and
   Location): the leader a 307 names; at again after a 200; the next node
   (after a pause of 10 ms) after anything else. */
size_t kit_cluster_follow(const kit_cluster_t *cluster, size_t at, long status,
                          const char *location);

/* A thread that writes key=key, each key new (prefix and a number), to
   whichever node leads, following 307s, and keeps the keys answered 200
   (at most 100 000). HTTP requests give up after timeout_ms. NULL when it
   cannot start. */
typedef struct kit_writer_t kit_writer_t;
kit_writer_t *kit_writer_start(kit_cluster_t *cluster, const char *prefix,
                               long timeout_ms);
/* Keys acknowledged so far. */
size_t kit_writer_count(const kit_writer_t *writer);
/* Stops the thread (once); returns the keys acknowledged. */
size_t kit_writer_stop(kit_writer_t *writer);
/* Answers other than 200 and 307 it got (and requests with none). */
size_t kit_writer_refused(const kit_writer_t *writer);
/* How many acknowledged keys node's /dump lacks (the first few are
   printed); every key when the dump fails. */
size_t kit_writer_missing(const kit_writer_t *writer, const kit_node_t *node);
/* Stops it and frees it; nulls *writer_p; NULL-safe. */
void kit_writer_free(kit_writer_t **writer_p);

/*  ---------------------------------------------------------------------
    Histories: is what clients saw linearizable? (kit_linear.c, after
    Wing & Gong, Lowe, and the porcupine checker) */

/* One operation on one key, as a client saw it. Times on one clock. */
typedef struct {
    const char *key;
    bool write;        /* a write of value, else a read */
    const char *value; /* write: what it wrote (unique per key); read: what
                          it returned, when found */
    bool found;        /* read: the key existed */
    int64_t call_us;   /* sent */
    int64_t return_us; /* answered; INT64_MAX for a write whose outcome is
                          unknown (no answer, or an answer that does not
                          say): it may take effect any time after its call,
                          or not at all */
} kit_op_t;

/* 1 when the history is linearizable, key by key (each key a register);
   0 when not, with *bad_key (may be NULL) set to a key whose history is
   not; -1 when out of memory; -2 when the search for one key passed
   KIT_LINEAR_BUDGET steps (undecided: many overlapping writes of unknown
   outcome make the search exponential). Leave out operations known not
   to have happened (a write refused before it was logged). */
#define KIT_LINEAR_BUDGET 50000000ull
int kit_linearizable(const kit_op_t *ops, size_t count, const char **bad_key);

/* A history of six registers recorded against cluster by two threads
   (a writer following the leader, a reader of every node) while a suite
   does harm to it (kit_history.c): HTTP requests give up after
   timeout_ms. NULL when it cannot start. */
typedef struct kit_history_t kit_history_t;
kit_history_t *kit_history_start(kit_cluster_t *cluster, long timeout_ms);

/* Stops the threads, prints what was recorded and checks it: 1
   linearizable, 0 not (or too short to tell), -2 undecided, -1 out of
   memory. When it is not 1 and QKV_HISTORY_DUMP names a file, the
   register at fault is written there, one operation per line ("W value
   call_us return_us", "R value ..."; return_us -1: unknown), to study.
   Frees the history and nulls *history_p. */
int kit_history_check(kit_history_t **history_p);

/*  ---------------------------------------------------------------------
    HTTP over libcurl: one easy handle per thread (keep-alive), never
    following redirects, no proxy, "Expect:" disabled. */

typedef struct {
    long status;              /* HTTP status, 0 when no answer */
    char *body;               /* malloc'd, NUL-terminated ("" when empty) */
    size_t body_len;          /* bytes in body */
    char *location;           /* Location header, or NULL */
    char *content_type;       /* Content-Type header, or NULL */
    long long content_length; /* Content-Length header, -1 when absent */
    char *www_authenticate;   /* WWW-Authenticate header, or NULL */
} kit_resp_t;

/* Sends method url with body (NULL: none; sent as application/json).
   Fills resp (free with kit_resp_free). Returns 0, or -1 when no HTTP
   answer came (the reason is printed). */
int kit_http(const char *method, const char *url, const char *body,
             size_t body_len, kit_resp_t *resp);
void kit_resp_free(kit_resp_t *resp);

/* GET url: sets *status and *body (malloc'd; NULL allowed to ignore it).
   Returns 0 or -1 on transport failure. */
int kit_http_get(const char *url, long *status, char **body);

/* POST url with a JSON body: sets *status, *body and *location (malloc'd
   or NULL when absent; either pointer may be NULL to ignore). 0 or -1. */
int kit_http_post_json(const char *url, const char *json, long *status,
                       char **body, char **location);

/* Per-thread request timeout in milliseconds (default 30000). */
void kit_http_set_timeout_ms(long timeout_ms);

/* Per-thread: when quiet, transport failures are not printed. */
void kit_http_set_quiet(bool quiet);

/* After a request on this thread got no answer: true when it cannot have
   reached the server (no connection was made), false when it may have
   (it timed out, the connection broke). Only with fresh connections (see
   below): on a reused one that broke, libcurl sends the request again on
   a new connection, and a failure of that says nothing of the first. */
bool kit_http_not_sent(void);

/* This thread's requests each on a new connection (no keep-alive), or
   not (the default). */
void kit_http_set_fresh(bool fresh);

/* Per-thread: the bearer token sent with every request of this thread as
   "Authorization: Bearer TOKEN" (copied; at most 511 characters). NULL
   sends none. Until a thread sets one, env QKV_TEST_TOKEN is used when
   set (a cluster with HTTP_TOKENS_FILE). */
void kit_http_set_token(const char *token);

/* Per-thread: a PEM file of CA certificates that https:// URLs are
   verified with (copied; NULL: libcurl's default store). Until a thread
   sets one, env QKV_TEST_CAFILE is used when set. */
void kit_http_set_cafile(const char *path);

/* Frees the calling thread's handle (closing its connections); threads
   that end free theirs on their own, and the main thread's is freed at
   exit. */
void kit_http_thread_done(void);

/* Percent-encodes s (len bytes) for a query string; malloc'd. */
char *kit_url_escape(const char *s, size_t len);

/*  ---------------------------------------------------------------------
    JSON helpers (jansson). */

/* Parses body (NUL bytes in strings allowed, as qkv stores them) and
   returns a new reference, or NULL when it is not JSON. */
json_t *kit_json_parse(const char *body, size_t len);

/* GET url and parse the body as a JSON object. Returns a new reference,
   or NULL (transport failure or a body that is not a JSON object; then
   the body is printed). *status is set either way (0: no answer). */
json_t *kit_get_json(const char *url, long *status);

/* POST body (not taken) to url; parses the answer like kit_get_json.
   *location gets a malloc'd copy of the Location header when location is
   not NULL (NULL when absent). */
json_t *kit_post_json(const char *url, const json_t *body, long *status,
                      char **location);

/* The string field, or NULL when absent or not a string. */
const char *kit_json_str(const json_t *obj, const char *field);

/* The integer field as a uint64: true when present, an integer and >= 0.
 */
bool kit_json_u64(const json_t *obj, const char *field, uint64_t *out);

/*  ---------------------------------------------------------------------
    The qkv REST API (DESIGN.md), for cluster suites. base is a node's base
    URL. Each call returns the parsed JSON object (new reference) or NULL,
    and sets *status (0 when no answer). */

/* POST base+route (route "/put" or "/write") {"key","value"}. *location
   gets the Location header (malloc'd) when location is not NULL. */
json_t *kit_qkv_write(const char *base, const char *route, const char *key,
                      const char *value, long *status, char **location);

/* The same with key and value of given lengths (NUL bytes allowed). */
json_t *kit_qkv_writen(const char *base, const char *route, const char *key,
                       size_t key_len, const char *value, size_t value_len,
                       long *status, char **location);

/* GET base+route?key=K (route "/get" or "/read"), key percent-encoded. */
json_t *kit_qkv_read(const char *base, const char *route, const char *key,
                     long *status);
json_t *kit_qkv_readn(const char *base, const char *route, const char *key,
                      size_t key_len, long *status);

json_t *kit_qkv_health(const char *base, long *status);
/* A number field of base's /health (0 when absent or no answer). */
uint64_t kit_qkv_health_u64(const char *base, const char *field);
/* The dump, with every NUL in its strings shown as U+2400 (jansson takes
   no NUL in object keys). */
json_t *kit_qkv_dump(const char *base, long *status);
/* The same for a full URL (a /dump with a query). */
json_t *kit_get_dump(const char *url, long *status);

/* True when GET /get on base answers 200 with this value and seq (seq 0:
   any seq). */
bool kit_qkv_holds(const char *base, const char *key, const char *value,
                   uint64_t seq);
/* Polls kit_qkv_holds for up to timeout_ms; true once it holds. */
bool kit_qkv_wait_holds(const char *base, const char *key, const char *value,
                        uint64_t seq, int timeout_ms);

/* Waits until the leader's /health shows commit_index == last_index ==
   applied_index (nothing pending). Sets *index to it; true on success. */
bool kit_qkv_settled(const char *leader, int timeout_ms, uint64_t *index);

/* Waits until node's /dump has the same entries and applied_index as the
   leader's (both fetched on each try). On timeout prints what differs and
   returns false. */
bool kit_qkv_wait_same_dump(const char *leader, const char *node,
                            int timeout_ms);

/* Checks Prometheus text exposition: every sample line is NAME[{LABELS}]
   VALUE, and every histogram (NAME_bucket{le=...} lines) is cumulative and
   ends with le="+Inf" equal to NAME_count. Returns true, or false with the
   first problem in why. */
bool kit_prom_check(const char *text, char *why, size_t why_size);

/* The value of the first sample named exactly name (with any labels),
   or, when name ends in {LABELS}, of the sample with exactly those labels
   (as the node writes them, e.g. qkv_writes_total{proto="zmq"}); false
   (and *value untouched) when there is none. */
bool kit_prom_value(const char *text, const char *name, double *value);

#endif
