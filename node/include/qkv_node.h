/*  qkv_node.h - a running node: its store, its log and replication actor,
    and the one small interface other threads (HTTP workers) use.

    Threads: qkv_node_new starts the replication actor, the single thread
    that owns every replication socket, the log and every timer. Any other
    thread may call the functions below concurrently: writes are handed to
    the actor through a mutex-protected inbox and an eventfd wake-up, and
    the caller sleeps on its own condition variable until the entry commits
    or the deadline passes. Status and metrics are read from atomics the
    actor publishes. Nothing here knows HTTP or msgpack.
*/
#ifndef QKV_NODE_H
#define QKV_NODE_H

#include "qkv_config.h"
#include "qkv_msg.h"
#include "qkv_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_node_t qkv_node_t;

/* Starts a node for cfg (copied): binds or connects its replication
   sockets and starts the actor. Returns NULL with a reason in err when it
   cannot. */
qkv_node_t *qkv_node_new(const qkv_config_t *cfg, char *err, size_t err_size);

/* Stops replication: every waiting and every later write answers
   QKV_WRITE_UNAVAILABLE at once; reads go on. Safe to call twice. Call it
   before stopping the gateway, so that no worker waits for a deadline. */
void qkv_node_stop(qkv_node_t *self);

/* Stops the node if still running and frees it; nulls *self_p; safe on
   NULL. Call it after the gateway is stopped. */
void qkv_node_destroy(qkv_node_t **self_p);

/* The node's settings and store; owned by the node. */
const qkv_config_t *qkv_node_config(const qkv_node_t *self);
qkv_store_t *qkv_node_store(qkv_node_t *self);

typedef enum {
    QKV_WRITE_COMMITTED = 0, /* committed and applied; index and seq set */
    QKV_WRITE_TIMEOUT,       /* in the log (index set, or 0 if not yet
                                numbered) but not committed by the deadline;
                                it stays and commits when enough followers
                                answer */
    QKV_WRITE_NOT_LEADER,    /* this node is a follower */
    QKV_WRITE_UNAVAILABLE    /* out of memory or shutting down: not written */
} qkv_write_status_t;

typedef struct {
    qkv_write_status_t status;
    uint64_t index;     /* log index of the entry (0 when not appended) */
    uint64_t seq;       /* key's seq after the write (PUT only) */
    int64_t latency_us; /* from submission to the answer */
} qkv_write_result_t;

/* Appends a write through the leader's log and waits up to
   REPLICATION_TIMEOUT_MS for it to commit. Key and value are copied;
   sizes must already be within the configured limits. Blocks the caller.
   Thread-safe. */
void qkv_node_write(qkv_node_t *self, qkv_op_t op, const char *key,
                    size_t key_len, const char *value, size_t value_len,
                    qkv_write_result_t *result);

/* Read-your-writes: waits up to wait_ms for this node to have applied
   index. Returns 0 once it has, -1 when the wait ended first. Blocks the
   caller; thread-safe. */
int qkv_node_wait_applied(qkv_node_t *self, uint64_t index, int wait_ms);

/* One follower as the leader sees it. */
typedef struct {
    char id[32];          /* follower<N>, N its place in FOLLOWERS from 1 */
    char endpoint[256];   /* as configured */
    bool connected;       /* acked within the last few heartbeats */
    uint64_t acked_index; /* its latest ACK's last_index */
    uint64_t lag;         /* leader's last index - acked_index */
} qkv_follower_status_t;

typedef struct {
    qkv_role_t role;
    char replication_id[17]; /* hex; "" on a follower that has no leader yet */
    uint64_t last_index;     /* last entry held */
    uint64_t commit_index;   /* leader's commit index as this node knows it */
    uint64_t applied_index;  /* last entry applied to the store */
    char error[256];         /* "" when healthy; else why it stopped acking */
    size_t follower_count;
    qkv_follower_status_t followers[QKV_MAX_FOLLOWERS];
} qkv_node_status_t;

/* Fills status with the latest values the actor published. */
void qkv_node_status(qkv_node_t *self, qkv_node_status_t *status);

/* Upper bounds (seconds) of the write latency histogram; the last bucket
   is +Inf and not listed. */
#define QKV_LATENCY_BUCKETS 14
extern const double qkv_latency_bounds_s[QKV_LATENCY_BUCKETS];

typedef struct {
    uint64_t writes;           /* writes submitted */
    uint64_t commits;          /* writes answered committed */
    uint64_t timeouts;         /* writes answered not confirmed in time */
    uint64_t bad_requests;     /* requests refused as invalid */
    uint64_t malformed_frames; /* replication frames dropped as malformed */
    uint64_t frames_sent;      /* replication frames handed to ZeroMQ */
    uint64_t frames_received;  /* replication frames read */
    uint64_t entries_sent;     /* leader: log entries in those frames */
    uint64_t latency_count;    /* observations in the histogram */
    double latency_sum_s;      /* their sum */
    uint64_t latency_le[QKV_LATENCY_BUCKETS + 1]; /* non-cumulative counts */
} qkv_metrics_t;

/* Snapshot of the counters. */
void qkv_node_metrics(qkv_node_t *self, qkv_metrics_t *metrics);

/* Counts a refused request (for /metrics). */
void qkv_node_count_bad_request(qkv_node_t *self);

#endif
