/*  qkv_state.h - the state machine: the store and the client sessions,
    changed only by applying committed entries in log order, the same way
    on every node.

    Applying an entry: an untagged write goes to the store. A tagged one is
    judged by the sessions first (qkv_sessions.h): new - applied to the
    store and recorded with its result; a retry of an applied write, a
    conflict, or a pair too old to tell - a no-op that still takes its
    index (the store's applied index moves, no key changes). Every entry
    advances the sessions' log time. Each entry's outcome is reported, so
    the leader can answer the writers waiting for it.

    Not thread-safe for writing: the replication actor is the only caller;
    other threads read the store through qkv_store.h.
*/
#ifndef QKV_STATE_H
#define QKV_STATE_H

#include "qkv_log.h"
#include "qkv_sessions.h"
#include "qkv_snap.h"
#include "qkv_store.h"

/* What applying one entry did. */
typedef enum {
    QKV_APPLIED = 0,      /* the write changed the store (result is its own) */
    QKV_APPLIED_RETRY,    /* a retry: no-op; index and result are the
                             original's */
    QKV_APPLIED_CONFLICT, /* pair reused with other content: no-op */
    QKV_APPLIED_EXPIRED   /* pair too old to tell: no-op, never applied */
} qkv_applied_t;

typedef struct {
    uint64_t index;        /* the entry applied */
    uint8_t kind;          /* qkv_applied_t */
    uint8_t op;            /* the entry's qkv_op_t */
    uint64_t answer_index; /* QKV_APPLIED: index; a retry: the original's */
    uint64_t result;       /* PUT: the key's seq; DELETE: 1 existed / 0 */
} qkv_outcome_t;

typedef struct qkv_state_t qkv_state_t;

/* Returns a state machine over store (not owned; it must outlive the
   state) with sessions of the given window and ttl_ms, or NULL when out
   of memory or a limit is out of range. */
qkv_state_t *qkv_state_new(qkv_store_t *store, size_t window, uint64_t ttl_ms);
/* Destroys the state machine (not the store); nulls *self_p; NULL-safe. */
void qkv_state_destroy(qkv_state_t **self_p);

/* Applies entries applied + 1 .. last of log (all held), at most max of
   them, writing one outcome each into outcomes (max slots). Returns how
   many were applied: fewer than requested only when out of memory (the
   entry after them was not applied). */
size_t qkv_state_apply(qkv_state_t *self, const qkv_log_t *log, uint64_t last,
                       qkv_outcome_t *outcomes, size_t max);

/* The last entry applied. */
uint64_t qkv_state_applied_index(const qkv_state_t *self);

/* The sessions, for the leader's shortcut at the door (read only). */
const qkv_sessions_t *qkv_state_sessions(const qkv_state_t *self);

/* Drops every key and session; applied index 0 (another cluster). */
void qkv_state_clear(qkv_state_t *self);

/* Encodes the state as applied now into out (qkv_snap.h); sets
   meta->index (the applied index) and meta->keys; the caller sets
   cluster_id and term. Returns 0, or -1 when out of memory. */
int qkv_state_snapshot(qkv_state_t *self, qkv_snap_meta_t *meta,
                       qkv_buf_t *out);

/* Starts saving a snapshot of the state as applied now in the background
   (qkv_snap_saver_fork); sets meta->index. False when one is under way
   or it could not start. */
bool qkv_state_save(qkv_state_t *self, qkv_snap_saver_t *saver,
                    qkv_snap_meta_t *meta);

/* Replaces the state with a snapshot image. Returns 0, or -1 with why
   (the state is then empty). */
int qkv_state_install(qkv_state_t *self, const void *image, size_t size,
                      char *why, size_t why_size);

/* Loads the newest valid snapshot file of dir (qkv_snap_load_newest). */
int qkv_state_load(qkv_state_t *self, const char *dir, qkv_snap_meta_t *meta,
                   uint64_t *bytes, char *err, size_t err_size);

#endif
