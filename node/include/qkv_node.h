/*  qkv_node.h - a running node: its store, its log and replication actor,
    and the one small interface other threads (HTTP workers) use.

    Threads: qkv_node_new starts the replication actor, the single thread
    that owns every replication socket, the log and every timer. Any other
    thread may call the functions below concurrently: writes are handed to
    the actor through a mutex-protected inbox and an eventfd wake-up, where
    they go through the one door every write takes (qkv_door.c), and the
    caller sleeps on its own condition variable until the actor answers.
    Status and metrics are read from atomics the actor publishes. Nothing
    here knows HTTP or msgpack.
*/
#ifndef QKV_NODE_H
#define QKV_NODE_H

#include "qkv_config.h"
#include "qkv_entry.h"
#include "qkv_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_node_t qkv_node_t;

/* Starts a node for cfg (copied): binds or connects its replication
   sockets and starts the actor. Returns NULL with a reason in err when it
   cannot. */
qkv_node_t *qkv_node_new(const qkv_config_t *cfg, char *err, size_t err_size);

/* Stops replication: every waiting write is answered at once (TIMEOUT
   with its index when it is in the log: its outcome is unknown; else
   UNAVAILABLE), every later one UNAVAILABLE; reads go on. Safe to call
   twice. Call it before stopping the gateway, so that no worker waits for
   a deadline. */
void qkv_node_stop(qkv_node_t *self);

/* Stops the node if still running and frees it; nulls *self_p; safe on
   NULL. Call it after the gateway is stopped. */
void qkv_node_destroy(qkv_node_t **self_p);

/* The node's settings and store; owned by the node. */
const qkv_config_t *qkv_node_config(const qkv_node_t *self);
qkv_store_t *qkv_node_store(qkv_node_t *self);

/* A write as a caller hands it to the node. */
typedef struct {
    qkv_op_t op;         /* QKV_OP_PUT, QKV_OP_DELETE or QKV_OP_RESET */
    const char *key;     /* bytes, not NUL-terminated; "" for RESET */
    size_t key_len;      /* within MAX_KEY_BYTES */
    const char *value;   /* PUT only, else NULL */
    size_t value_len;    /* within MAX_VALUE_BYTES */
    uint64_t client_id;  /* session, 1 .. QKV_CLIENT_ID_MAX; 0: untagged */
    uint64_t client_seq; /* with client_id: 1 .. QKV_CLIENT_ID_MAX */
} qkv_write_t;

typedef enum {
    QKV_WRITE_COMMITTED = 0,   /* committed and applied, or a retry of one:
                                  index and seq are the original's */
    QKV_WRITE_TIMEOUT,         /* quorum_not_reached: in the log at index,
                                  not confirmed in time; it stays and
                                  commits when enough followers answer */
    QKV_WRITE_NOT_LEADER,      /* this node is a follower */
    QKV_WRITE_CONFLICT,        /* the pair was used for other content:
                                  nothing written */
    QKV_WRITE_SESSION_EXPIRED, /* the pair is older than its session
                                  remembers: never applied */
    QKV_WRITE_UNAVAILABLE,     /* out of memory, stopping, or not taken in
                                  time: nothing written */
    QKV_WRITE_NO_SPACE,        /* insufficient_storage: the log cannot be
                                  written (disk full, I/O error): nothing
                                  written */
    QKV_WRITE_NO_LEADER,       /* no leader known (an election is under
                                  way): nothing written */
    QKV_WRITE_LEADER_CHANGED,  /* the leader stepped down while the write
                                  waited: in the log at index; outcome
                                  unknown (a new leader may keep or drop
                                  it: retry with the same pair) */
    QKV_WRITE_OVERLOADED,      /* MAX_PENDING_WRITES writes already wait:
                                  nothing written; retry later */
    QKV_WRITE_MEMORY_FULL      /* insufficient_storage: MAX_MEMORY reached;
                                  nothing written */
} qkv_write_status_t;

typedef struct {
    qkv_write_status_t status;
    uint64_t index;     /* the entry's index (a retry: the original's); set
                           for COMMITTED and TIMEOUT, never 0 there */
    uint64_t seq;       /* PUT: the key's seq; DELETE: 1 when the key
                           existed, else 0 */
    int64_t latency_us; /* from submission to the answer */
} qkv_write_result_t;

/* Hands a write to the leader's log and waits up to REPLICATION_TIMEOUT_MS
   for it to commit. Key and value are copied; sizes must already be
   within the configured limits, and a pair within range. Blocks the
   caller. Thread-safe. */
void qkv_node_write(qkv_node_t *self, const qkv_write_t *write,
                    qkv_write_result_t *result);

/* Read-your-writes: waits up to wait_ms for this node to have applied
   index. Returns 0 once it has, -1 when the wait ended first. Blocks the
   caller; thread-safe. */
int qkv_node_wait_applied(qkv_node_t *self, uint64_t index, int wait_ms);

/* One follower as the leader sees it. */
typedef struct {
    char id[128];         /* follower<N>, N its place in FOLLOWERS from 1;
                             PEERS: its NODE_ID */
    char endpoint[256];   /* as configured */
    bool connected;       /* acked within the last few heartbeats */
    uint64_t acked_index; /* its latest ACK's last_index */
    uint64_t lag;         /* leader's last index - acked_index */
} qkv_follower_status_t;

typedef struct {
    qkv_role_t role;          /* now: with PEERS it follows elections */
    bool elections;           /* PEERS is set */
    char leader_id[128];      /* PEERS: the leader's NODE_ID; "" unknown */
    bool voter;               /* PEERS: may vote (see qkv_core_voter) */
    int64_t last_election_ms; /* PEERS: wall clock of the last leader
                                 change this node saw; 0 none */
    uint64_t elections_won, step_downs, votes_granted;
    char cluster_id[17];      /* hex; "" on a follower that has no leader */
    uint64_t term;            /* the leader's term as this node knows it */
    uint64_t last_index;      /* last entry held */
    uint64_t commit_index;    /* leader's commit index as this node knows it */
    uint64_t applied_index;   /* last entry applied to the store */
    uint64_t durable_index;   /* last entry held as FSYNC promises */
    uint64_t snapshot_index;  /* index of the newest snapshot; 0 none */
    bool serving;             /* leader: its term started (first entry
                                 committed); follower: true */
    bool syncing;             /* follower: catching up since it started */
    uint64_t behind;          /* follower: leader's commit - applied */
    uint64_t max_frame_bytes; /* largest zmq-native client frame taken */
    char error[256];          /* "" when healthy; else why it stopped acking */
    size_t follower_count;
    qkv_follower_status_t followers[QKV_MAX_FOLLOWERS];
} qkv_node_status_t;

/* NULL when this node may answer reads now; else why not (a leader whose
   term has not started, a follower catching up with SYNCING_READS=refuse):
   answer not_ready with it. */
const char *qkv_node_read_refusal(qkv_node_t *self);

/* After a read took its value: NULL when it may be answered, else why
   not (with PEERS, a leader whose read lease ran out, checked with a
   fresh clock reading: another node may lead by now). */
const char *qkv_node_read_confirm(qkv_node_t *self);

/* A planned handover of leadership (PEERS), as POST
   /admin/transfer-leader and SIGTERM on a leader ask for it. */
typedef enum {
    QKV_TRANSFER_DONE = 0,   /* the named node leads */
    QKV_TRANSFER_UNKNOWN,    /* no such NODE_ID in PEERS */
    QKV_TRANSFER_NOT_LEADER, /* this node does not lead (or no PEERS) */
    QKV_TRANSFER_BEHIND,     /* the node is not up to date: refused */
    QKV_TRANSFER_GAVE_UP,    /* it did not lead within the time given */
    QKV_TRANSFER_RUNNING     /* (internal) under way */
} qkv_transfer_t;

/* Hands leadership to the node named to (its NODE_ID) and waits up to
   timeout_ms until it leads. New writes are answered no_leader while the
   node catches up to the last entry; then it asks for votes at once. */
qkv_transfer_t qkv_node_transfer_leader(qkv_node_t *self, const char *to,
                                        int timeout_ms);

/* SIGTERM: a leader (PEERS) hands over to its most up-to-date voter
   first, waiting at most an election timeout; then stops. Returns
   whether a handover completed. */
bool qkv_node_hand_over(qkv_node_t *self);

/* This node leads now (with PEERS, until an election says otherwise). */
bool qkv_node_is_leader(qkv_node_t *self);

/* The leader's REST base URL for a 307 (PEERS: the current leader's;
   else LEADER_URL), or "" when unknown; at most size - 1 bytes. */
void qkv_node_leader_url(qkv_node_t *self, char *out, size_t size);

/* Fills status with the latest values the actor published. */
void qkv_node_status(qkv_node_t *self, qkv_node_status_t *status);

/* Upper bounds (seconds) of the write latency histogram; the last bucket
   is +Inf and not listed. */
#define QKV_LATENCY_BUCKETS 14
extern const double qkv_latency_bounds_s[QKV_LATENCY_BUCKETS];

/* The two ways writes come in. */
typedef enum {
    QKV_PROTO_REST = 0,
    QKV_PROTO_ZMQ = 1,
    QKV_PROTO_COUNT
} qkv_proto_t;

/* Write counters of one protocol. */
typedef struct {
    uint64_t writes;        /* writes that reached the door */
    uint64_t commits;       /* answered committed (retries included) */
    uint64_t timeouts;      /* answered not confirmed in time */
    uint64_t bad_requests;  /* requests refused as invalid */
    uint64_t latency_count; /* observations in the histogram (commits) */
    double latency_sum_s;   /* their sum */
    uint64_t latency_le[QKV_LATENCY_BUCKETS + 1]; /* non-cumulative */
} qkv_proto_metrics_t;

typedef struct {
    qkv_proto_metrics_t by_proto[QKV_PROTO_COUNT];
    uint64_t malformed_frames; /* replication frames dropped as malformed */
    uint64_t frames_sent;      /* replication frames handed to ZeroMQ */
    uint64_t frames_received;  /* replication frames read */
    uint64_t entries_sent;     /* leader: log entries in those frames */
    uint64_t sessions;         /* client sessions held */
    uint64_t session_records;  /* tagged writes remembered */
    /* durability */
    uint64_t fsyncs;              /* fsync rounds of the write-ahead log */
    uint64_t fsync_failures;      /* ... that failed */
    uint64_t entries_synced;      /* entries those rounds made durable */
    double fsync_seconds;         /* time in them */
    uint64_t fsync_le[8];         /* histogram (qkv_wal_fsync_bounds_s) */
    uint64_t log_disk_bytes;      /* bytes of log segments on disk */
    uint64_t log_write_errors;    /* write(2) calls the disk refused */
    double recovery_seconds;      /* start-up: snapshot load and log replay */
    uint64_t snapshots;           /* snapshots written */
    uint64_t snapshot_bytes;      /* size of the newest */
    uint64_t snapshots_sent;      /* leader: snapshots sent to followers */
    uint64_t snapshots_installed; /* follower: snapshots received */
    uint64_t term;                /* PEERS: elections */
    uint64_t elections_won;       /* times this node became leader */
    uint64_t step_downs;          /* times it stopped leading */
    uint64_t votes_granted;       /* votes it gave (not pre-votes) */
    uint64_t client_disconnects;  /* zmq-native client connections that
                                     ended (a client leaving, or ZeroMQ
                                     dropping a frame over the limit) */
    /* security (CURVE=on) */
    uint64_t curve_denied_repl;   /* replication connections whose key is
                                     not a member's */
    uint64_t curve_denied_client; /* client connections whose key is not
                                     in CLIENT_KEYS */
    uint64_t repl_forged;         /* messages whose routing id named
                                     another member than their key */
    uint64_t client_forbidden;    /* requests a read key may not make */
    uint64_t overloaded;          /* writes refused: MAX_PENDING_WRITES */
    uint64_t memory_full;         /* writes refused: MAX_MEMORY */
    uint64_t client_port_closed;  /* times the client port was closed for
                                     a second: out of file descriptors */
    uint64_t repl_port_closed;    /* the same, the replication port */
} qkv_metrics_t;

/* Snapshot of the counters. */
void qkv_node_metrics(qkv_node_t *self, qkv_metrics_t *metrics);

/* Counts a refused request (for /metrics). */
void qkv_node_count_bad_request(qkv_node_t *self, qkv_proto_t proto);

#endif
