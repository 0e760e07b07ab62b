/*  qkv_node_priv.h - what the node facade (qkv_node.c) and the actor's
    side (qkv_actor.c, qkv_door.c, qkv_clients.c) share. Nothing outside
    node/src includes it.

    A REST write travels as a qkv_waiter_t: the HTTP worker fills one with
    its entry, pushes it on the inbox and sleeps on its condition variable;
    the actor takes it through the door and answers it. Both sides hold a
    reference; whoever lets go last gives the waiter back to the pool, so a
    worker that gave up can leave while the actor still tracks its entry.
*/
#ifndef QKV_NODE_PRIV_H
#define QKV_NODE_PRIV_H

#include "qkv_clock.h"
#include "qkv_curve.h"
#include "qkv_node.h"
#include "qkv_say.h"
#include "qkv_sockopt.h"
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>

/* Where a REST write is. */
typedef enum {
    QKV_WAITER_QUEUED = 0, /* in the inbox */
    QKV_WAITER_TAKEN,      /* the actor has it: no longer cancellable */
    QKV_WAITER_DONE,       /* answered */
    QKV_WAITER_CANCELLED   /* the worker gave up before the actor took it:
                              the actor drops it unwritten */
} qkv_waiter_state_t;

typedef struct qkv_waiter_t qkv_waiter_t;
struct qkv_waiter_t {
    pthread_mutex_t mutex;     /* guards state and result */
    pthread_cond_t cond;       /* signalled when numbered or answered */
    qkv_waiter_state_t state;  /* see above */
    qkv_write_result_t result; /* the answer; index set once numbered */
    bool late;                 /* the worker passed its deadline and waits
                                  for the index */
    qkv_entry_t *entry;        /* the write, owned until the actor logs it */
    int64_t start_us;          /* when the worker handed it over */
    atomic_int refs;           /* holders: worker and actor */
    qkv_waiter_t *next;        /* inbox or free-list link */
};

/* The zmq-native client frame limit is this plus twice the largest key
   and value: room for a frame of many small requests or one large one. */
#define QKV_CLIENT_FRAME_BASE (16u << 20)

/* Write counters of one protocol (see qkv_proto_metrics_t). */
typedef struct {
    _Atomic uint64_t writes, commits, timeouts, bad_requests;
    _Atomic uint64_t latency_le[QKV_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
} qkv_proto_counters_t;

/* Published by the actor for other threads to read. */
typedef struct {
    _Atomic uint64_t acked_index; /* highest index it verified */
    _Atomic int64_t last_ack_us;  /* qkv_now_us of its last ACK; 0 = never */
} qkv_follower_pub_t;

struct qkv_node_t {
    qkv_config_t config;       /* settings, owned copy */
    qkv_store_t *store;        /* applied state; actor writes, others read */
    zactor_t *actor;           /* the replication actor */
    char start_error[256];     /* why the actor could not start */
    uint64_t client_frame_max; /* largest zmq-native client frame */

    /* inbox: REST writes handed to the actor */
    pthread_mutex_t inbox_mutex; /* guards inbox_head/tail and stopping */
    qkv_waiter_t *inbox_head;
    qkv_waiter_t *inbox_tail;
    bool stopping; /* no more writes accepted */
    int wake_fd;   /* eventfd: inbox became non-empty */

    /* waiter pool */
    pthread_mutex_t pool_mutex;
    qkv_waiter_t *pool; /* free waiters */
    qkv_waiter_t **all; /* every waiter ever made, for destroy */
    size_t all_count, all_cap;

    /* status published by the actor */
    _Atomic uint64_t cluster_id;    /* 0 = none yet (follower) */
    atomic_int role;                /* qkv_role_t now (PEERS: elections) */
    atomic_int leader_peer;         /* PEERS index of the leader; -1 unknown */
    _Atomic int64_t lease_until_us; /* PEERS leader: reads until then */
    atomic_bool voter;              /* PEERS: may vote */
    atomic_int transfer_to;         /* PEERS: a handover asked for (PEERS
                                       index), taken by the actor; -1 none */
    atomic_int transfer_state;      /* qkv_transfer_t of the last one */
    _Atomic uint64_t elections_won, step_downs, votes_granted;
    _Atomic int64_t last_election_ms; /* wall clock it last became leader
                                         or follower of a new leader */
    _Atomic uint64_t term;
    _Atomic uint64_t last_index;
    _Atomic uint64_t commit_index;
    _Atomic uint64_t durable_index;  /* last entry held as FSYNC promises */
    _Atomic uint64_t snapshot_index; /* index of the newest snapshot */
    _Atomic uint64_t leader_commit;  /* follower: the leader's commit index
                                        from its last APPEND */
    atomic_bool serving;             /* leader: its term's first entry
                                        committed; follower: true */
    atomic_bool synced;              /* follower: caught up once since it
                                        started (or installed a snapshot) */
    qkv_follower_pub_t followers[QKV_MAX_FOLLOWERS];
    pthread_mutex_t error_mutex; /* guards error */
    char error[256];

    /* read-your-writes waiters */
    pthread_mutex_t applied_mutex; /* with applied_cond */
    pthread_cond_t applied_cond;   /* broadcast when applied advances */
    atomic_int applied_waiters;    /* threads in qkv_node_wait_applied */

    /* metrics */
    qkv_proto_counters_t by_proto[QKV_PROTO_COUNT];
    _Atomic uint64_t malformed, frames_sent, frames_received, entries_sent;
    _Atomic uint64_t sessions, session_records, client_disconnects;
    /* durability (published by the actor) */
    _Atomic uint64_t fsyncs, fsync_failures, entries_synced, fsync_us;
    _Atomic uint64_t fsync_le[8];
    _Atomic uint64_t log_disk_bytes, log_write_errors, recovery_us;
    _Atomic uint64_t snapshots, snapshot_bytes, snapshots_sent,
        snapshots_installed;
    /* security */
    qkv_curve_t *curve;                /* CURVE=on: keys and ZAP; else NULL */
    qkv_sockopt_curve_t curve_keys;    /* its key pair for sockets */
    _Atomic uint64_t repl_forged;      /* mesh: routing id not the key's */
    _Atomic uint64_t client_forbidden; /* requests a read key may not make */
    _Atomic uint64_t overloaded, memory_full; /* writes refused by limits */
    _Atomic uint64_t client_port_closed;      /* out of files: closed */
    _Atomic uint64_t repl_port_closed;        /* the same, replication */
};

/* CURVE keys for this node's sockets; NULL when CURVE is off. */
const qkv_sockopt_curve_t *qkv_node_curve(const qkv_node_t *node);

/* Drops a reference; the last one returns the waiter to the pool. */
void qkv_waiter_release(qkv_node_t *node, qkv_waiter_t *waiter);

/* Actor side: takes every queued write (oldest first, linked by next).
   Reads the wake-up eventfd first so no push is missed. */
qkv_waiter_t *qkv_node_inbox_take(qkv_node_t *node);

/* Actor side: marks the node stopping and takes what is still queued. */
qkv_waiter_t *qkv_node_inbox_close(qkv_node_t *node);

/* Actor side: marks a waiter taken. Returns false when its worker had
   given up (cancelled): the actor then drops it unwritten. */
bool qkv_waiter_take(qkv_waiter_t *waiter);

/* Actor side: records the index its entry was given. */
void qkv_waiter_numbered(qkv_waiter_t *waiter, uint64_t index);

/* Actor side: answers a waiter and drops the actor's reference. */
void qkv_waiter_answer(qkv_node_t *node, qkv_waiter_t *waiter,
                       const qkv_write_result_t *result);

/* Actor side: the store's applied index advanced; wakes read-your-writes
   waiters, if any. */
void qkv_node_applied_advanced(qkv_node_t *node);

/* Counts a committed write's latency in its protocol's histogram. */
void qkv_node_observe(qkv_node_t *node, qkv_proto_t proto, int64_t us);

/* Sets the node's health error (a follower that stopped acknowledging);
   "" clears it. */
void qkv_node_set_error(qkv_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The replication actor (qkv_actor.c); args is the qkv_node_t. Signals 0
   on its pipe when running, or 1 after writing node->start_error. */
void qkv_actor_run(zsock_t *pipe, void *args);

#endif
