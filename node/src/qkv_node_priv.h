/*  qkv_node_priv.h - what the node facade (qkv_node.c) and the replication
    actor (qkv_repl.c) share. Nothing outside node/src includes it.

    A write travels as a qkv_waiter_t: the HTTP worker fills one with its
    entry, pushes it on the inbox and sleeps on its condition variable; the
    actor takes it, numbers the entry, and completes the waiter when the
    entry commits. Both sides hold a reference; whoever lets go last gives
    the waiter back to the pool, so a worker that times out can leave while
    the actor still tracks its entry.
*/
#ifndef QKV_NODE_PRIV_H
#define QKV_NODE_PRIV_H

#include "qkv_node.h"
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include "qkv_clock.h"
#include "qkv_say.h"

typedef struct qkv_waiter_t qkv_waiter_t;
struct qkv_waiter_t {
    pthread_mutex_t mutex;     /* guards the fields below it */
    pthread_cond_t cond;       /* signalled when done */
    bool done;                 /* the actor answered */
    qkv_write_status_t status; /* the answer */
    uint64_t index;            /* set when the actor appends the entry */
    uint64_t seq;              /* set at commit */
    qkv_entry_t *entry;        /* owned until the actor appends it */
    atomic_int refs;           /* holders: worker and actor */
    qkv_waiter_t *next;        /* inbox or free-list link */
};

/* Published by the actor for other threads to read. */
typedef struct {
    _Atomic uint64_t acked_index; /* latest ACK's last_index */
    _Atomic int64_t last_ack_us;  /* qkv_now_us of that ACK; 0 = never */
} qkv_follower_pub_t;

struct qkv_node_t {
    qkv_config_t config;   /* settings, owned copy */
    qkv_store_t *store;    /* applied state; actor writes, others read */
    zactor_t *actor;       /* the replication actor */
    char start_error[256]; /* why the actor could not start */

    /* inbox: writes handed to the actor */
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
    _Atomic uint64_t repl_id; /* 0 = none yet (follower) */
    _Atomic uint64_t last_index;
    _Atomic uint64_t commit_index;
    qkv_follower_pub_t followers[QKV_MAX_FOLLOWERS];
    pthread_mutex_t error_mutex; /* guards error */
    char error[256];

    /* read-your-writes waiters */
    pthread_mutex_t applied_mutex; /* with applied_cond */
    pthread_cond_t applied_cond;   /* broadcast when applied advances */
    atomic_int applied_waiters;    /* threads in qkv_node_wait_applied */

    /* metrics */
    _Atomic uint64_t writes, commits, timeouts; /* REST writes */
    _Atomic uint64_t bad_requests[QKV_PROTO_COUNT];
    _Atomic uint64_t malformed;
    _Atomic uint64_t frames_sent, frames_received, entries_sent;
    _Atomic uint64_t latency_le[QKV_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
};

/* Drops a reference; the last one returns the waiter to the pool. */
void qkv_waiter_release(qkv_node_t *node, qkv_waiter_t *waiter);

/* Actor side: takes every queued write (oldest first, linked by next).
   Reads the wake-up eventfd first so no push is missed. */
qkv_waiter_t *qkv_node_inbox_take(qkv_node_t *node);

/* Actor side: marks the node stopping and takes what is still queued. */
qkv_waiter_t *qkv_node_inbox_close(qkv_node_t *node);

/* Actor side: answers a waiter and drops the actor's reference. */
void qkv_waiter_complete(qkv_node_t *node, qkv_waiter_t *waiter,
                         qkv_write_status_t status, uint64_t seq);

/* Actor side: records the index given to a waiter's entry. */
void qkv_waiter_numbered(qkv_waiter_t *waiter, uint64_t index);

/* Actor side: the store's applied index advanced; wakes read-your-writes
   waiters, if any. */
void qkv_node_applied_advanced(qkv_node_t *node);

/* Sets the node's health error (follower that cannot apply). */
void qkv_node_set_error(qkv_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The replication actor (qkv_repl.c); args is the qkv_node_t. Signals 0
   on its pipe when running, or 1 after writing node->start_error. */
void qkv_repl_actor(zsock_t *pipe, void *args);

#endif
