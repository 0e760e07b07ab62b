/*  qkv_actor.h - the replication actor's state, shared by its two halves:
    qkv_repl.c (log, replication links, commit, apply) and qkv_serve.c
    (the zmq-native client endpoint). Both run on the actor thread only.
*/
#ifndef QKV_ACTOR_H
#define QKV_ACTOR_H

#include "qkv_log.h"
#include "qkv_node_priv.h"

typedef struct qkv_serve_t qkv_serve_t;
typedef struct qkv_actor_t qkv_actor_t;

typedef struct {
    int64_t release_us; /* when it may go */
    uint64_t end_index; /* last entry it carries; 0 for none */
    zmq_msg_t msg;      /* the frame */
} s_held_t;

typedef struct {
    zsock_t *sock;            /* DEALER to the follower */
    void *handle;             /* its libzmq socket */
    size_t id;                /* position in FOLLOWERS */
    uint64_t match;           /* latest ACK's last_index */
    uint64_t next_index;      /* next entry to send */
    uint64_t released;        /* last entry handed to the socket */
    uint64_t commit_sent;     /* commit index last sent */
    int64_t last_queued_us;   /* last message queued or sent */
    int64_t last_advance_us;  /* last ACK that raised match */
    int64_t unacked_since_us; /* released entries await an ACK since */
    int64_t last_rewind_us;   /* last rewind to match + 1 */
    bool rewind_pending;      /* rewind at the next chance */
    s_held_t *held;           /* delay FIFO, a ring */
    size_t held_head, held_count, held_cap;
} s_link_t;

typedef struct {
    uint64_t index;       /* entry the writer waits for */
    qkv_waiter_t *waiter; /* its waiter, the actor's reference */
} s_wait_t;

struct qkv_actor_t {
    qkv_node_t *node;        /* the node we serve */
    const qkv_config_t *cfg; /* its settings */
    zsock_t *pipe;           /* actor pipe */
    qkv_log_t *log;          /* the replicated log */
    qkv_encoder_t *encoder;  /* reused for every frame */
    qkv_decoder_t *decoder;  /* reused for every frame */
    uint64_t repl_id;        /* leader: ours; follower: the leader's */
    uint64_t commit_index;   /* highest index known committed */
    uint64_t applied;        /* last index applied to the store */
    bool broken;             /* cannot apply: stop acking */
    uint64_t rng;            /* xorshift state for delays */
    int64_t resend_us;       /* resend interval */
    int timer_fd;            /* timerfd armed for the next timer */
    /* leader */
    s_link_t links[QKV_MAX_FOLLOWERS];
    size_t link_count;
    uint64_t *cum; /* cum[i]: wire bytes of entries 1..i */
    size_t cum_cap;
    s_wait_t *waits; /* writers by index, a ring */
    size_t wait_head, wait_count, wait_cap;
    /* follower */
    zsock_t *router; /* ROUTER the leader connects to */
    void *router_handle;
    zmq_msg_t peer;         /* routing id of the last APPEND's sender */
    uint64_t acked_last;    /* last_index of the last ACK sent */
    uint64_t acked_repl_id; /* its repl_id */
    int64_t acked_at_us;    /* when it was sent */
    bool have_peer;
    char leader_endpoint[QKV_MAX_ENDPOINT + 1]; /* leader's client endpoint
                                                   as last heard; "" none */
    /* client endpoint (qkv_serve.c) */
    qkv_serve_t *serve;
};

/*  ---------------------------------------------------------------------
    qkv_repl.c, for qkv_serve.c */

/* Leader: numbers and logs an entry (takes *entry_p on success). Returns
   its index, or 0 when out of memory (the entry stays the caller's). */
uint64_t qkv_actor_append(qkv_actor_t *self, qkv_entry_t **entry_p);

/* Reads one message from a ROUTER without waiting: returns -1 when none
   waits (nothing to close), else initialises *id and *body (the caller
   closes both) and returns 1 for a well-framed [routing id][frame]
   message, 0 for any other shape (the extra frames are dropped). */
int qkv_actor_router_recv(void *router, zmq_msg_t *id, zmq_msg_t *body);

/*  ---------------------------------------------------------------------
    qkv_serve.c, for qkv_repl.c */

/* Binds the client ROUTER on BIND:CLIENT_PORT. Returns 0, or -1 with
   node->start_error set. */
int qkv_serve_start(qkv_actor_t *self);
/* Answers what is pending unavailable and closes the endpoint. */
void qkv_serve_stop(qkv_actor_t *self);
/* The client ROUTER's libzmq socket, for zmq_poll. */
void *qkv_serve_handle(qkv_actor_t *self);
/* Reads and serves waiting request frames (bounded per call). */
void qkv_serve_read(qkv_actor_t *self, int64_t now);
/* Entries first .. first + count - 1 were just applied, with seqs[i] the
   store's result for first + i: answers the client writes among them. */
void qkv_serve_applied(qkv_actor_t *self, uint64_t first, size_t count,
                       const uint64_t *seqs);
/* After applying: answers reads waiting for min_index. */
void qkv_serve_after_apply(qkv_actor_t *self);
/* Answers what passed its deadline; returns the next deadline (0 none). */
int64_t qkv_serve_timers(qkv_actor_t *self, int64_t now);

#endif
