/*  qkv_door.h - the one door for writes: every write, REST or zmq-native,
    enters the leader's log here, waits here, times out here, is
    deduplicated and counted here, and is answered from here.

    The door is the actor's (its thread only). A write arrives with its
    origin: who asked and how to answer (a REST worker's waiter, or a
    zmq-native client's peer and request id; the door does not know
    either, it hands the origin back through the answer hook). Then:

    1. On a follower: not_leader at once.
    2. A tagged write (client_id, client_seq) whose pair is in the log and
       not applied yet: a retry with the same content waits for that
       entry; other content is a conflict. Whose pair the sessions know
       from an applied write: the original's answer at once, or conflict;
       a pair below a known session's floor: session_expired. (Shortcuts
       only: the verdict that counts is the one every node reaches when
       it applies the entry, qkv_state.c.)
    3. Otherwise the write is logged (qkv_core_propose), stamped with the
       leader's clock, and parked until it is applied or its deadline,
       REPLICATION_TIMEOUT_MS after it came in, passes: then it is
       answered quorum_not_reached with its index, and stays in the log.

    Parked writes form a ring ordered by index, which is also the order of
    their deadlines; retries waiting for an entry are few and kept apart.
    One call answers every waiting write at once (at stop, and at
    step-down once elections exist).
*/
#ifndef QKV_DOOR_H
#define QKV_DOOR_H

#include "qkv_core.h"
#include "qkv_node_priv.h"
#include "qkv_state.h"

/* Who asked for a write, and how to reach them again. */
typedef struct {
    uint8_t proto;    /* qkv_proto_t */
    uint8_t op;       /* qkv_op_t of the write */
    uint32_t peer;    /* zmq: the client's peer slot (qkv_clients.c) */
    uint64_t id;      /* zmq: the request id */
    void *waiter;     /* REST: its qkv_waiter_t */
    int64_t start_us; /* when it came in (qkv_now_us) */
} qkv_origin_t;

/* How the door reaches the origins; called on the actor thread. */
typedef struct {
    /* the write is answered (result->latency_us is set) */
    void (*answer)(void *ctx, const qkv_origin_t *origin,
                   const qkv_write_result_t *result);
    /* the write's entry got index (before any answer) */
    void (*numbered)(void *ctx, const qkv_origin_t *origin, uint64_t index);
    void *ctx;
} qkv_door_hooks_t;

typedef struct qkv_door_t qkv_door_t;

/* Returns a door for the node's writes through core (the log) and state
   (the sessions), or NULL when out of memory. None is owned; all must
   outlive the door. */
qkv_door_t *qkv_door_new(qkv_node_t *node, qkv_core_t *core,
                         const qkv_state_t *state,
                         const qkv_door_hooks_t *hooks);
/* Destroys the door (answer what waits first: qkv_door_fail_all); nulls
 *self_p; safe on NULL. */
void qkv_door_destroy(qkv_door_t **self_p);

/* Takes a write: *entry_p (op, key, value, client_id, client_seq set) is
   the door's from here on (nulled). Answers now, or parks it. */
void qkv_door_write(qkv_door_t *self, qkv_entry_t **entry_p,
                    const qkv_origin_t *origin, int64_t now);

/* Entries outcomes[0 .. count) were just applied, in order: answers the
   writes waiting for them. */
void qkv_door_applied(qkv_door_t *self, const qkv_outcome_t *outcomes,
                      size_t count, int64_t now);

/* Answers what passed its deadline; returns the next deadline, 0 for
   none. */
int64_t qkv_door_expire(qkv_door_t *self, int64_t now);

/* Answers every waiting write at once: those in the log TIMEOUT with
   their index (outcome unknown), as the node stops or steps down. */
void qkv_door_fail_all(qkv_door_t *self, int64_t now);

/* The leader stepped down: every waiting write is answered
   LEADER_CHANGED with its index (outcome unknown). */
void qkv_door_step_down(qkv_door_t *self, int64_t now);

/* While no_space, new writes are answered insufficient_storage (the log
   cannot be written); those already logged wait as before. */
void qkv_door_set_no_space(qkv_door_t *self, bool no_space);

#endif
