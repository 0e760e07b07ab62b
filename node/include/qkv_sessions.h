/*  qkv_sessions.h - client sessions: which tagged writes were applied,
    with what result, part of the replicated state.

    A writer tags its writes with (client_id, client_seq) (the Raft
    thesis's client sessions, §6.3). Every node decides, while it applies
    an entry in log order, whether the entry's pair was seen before; so
    every node holds the same table, and a retry is recognised by whichever
    node leads. The table remembers:
    - per client (a session), the log time of its last write and its floor:
      the highest seq whose record was forgotten;
    - the last `window` tagged writes of all clients (the records): pair,
      content hash, index and result.
    A pair with a record is a retry (same hash: the original result) or a
    conflict (another hash). A pair without one is new, unless its seq is
    at or below its session's floor, or its client is unknown and the seq
    is above 1: then it is too old to tell (session_expired), and never
    applied. Seqs are unique per client and need not arrive in order.

    Forgetting is deterministic, so every node forgets alike: records go
    oldest first once `window` are held; a session idle for ttl_ms of log
    time (the leader's clock stamped in each entry) goes with its records;
    and when `window` sessions exist, making another drops the one idle
    longest. RESET does not touch sessions.

    Not thread-safe: the replication actor is its only user.
*/
#ifndef QKV_SESSIONS_H
#define QKV_SESSIONS_H

#include "qkv_buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_sessions_t qkv_sessions_t;

/* What a tagged write is, against what was applied. */
typedef enum {
    QKV_SESSION_NEW = 0,  /* not seen: apply it */
    QKV_SESSION_RETRY,    /* same pair and content: the original result */
    QKV_SESSION_CONFLICT, /* same pair, other content: refuse */
    QKV_SESSION_EXPIRED   /* too old to tell: refuse, never apply */
} qkv_session_verdict_t;

/* A remembered write. */
typedef struct {
    uint64_t index;  /* the entry that applied it */
    uint64_t result; /* PUT: the key's seq; DELETE: 1 existed / 0 */
    uint64_t hash;   /* qkv_write_hash of its op, key and value */
} qkv_session_rec_t;

/* Returns an empty table remembering up to window (>= 1) writes and
   sessions, dropping sessions idle for ttl_ms (>= 1), or NULL when out of
   memory or window is out of range (above 2^30). */
qkv_sessions_t *qkv_sessions_new(size_t window, uint64_t ttl_ms);
/* Destroys the table and nulls *self_p; safe on NULL. */
void qkv_sessions_destroy(qkv_sessions_t **self_p);

/* The verdict on (client_id, client_seq) with content hash; for a retry,
   *rec (when rec is not NULL) points to the original's record, valid
   until the next change to the table. */
qkv_session_verdict_t qkv_sessions_check(const qkv_sessions_t *self,
                                         uint64_t client_id,
                                         uint64_t client_seq, uint64_t hash,
                                         const qkv_session_rec_t **rec);

/* Makes room for recording (client_id, client_seq) (and its session),
   so that the qkv_sessions_record of that pair right after cannot fail.
   Returns 0, or -1 when out of memory (nothing changed that matters). */
int qkv_sessions_reserve(qkv_sessions_t *self, uint64_t client_id,
                         uint64_t client_seq);

/* True when client_id has a session. */
bool qkv_sessions_known(const qkv_sessions_t *self, uint64_t client_id);

/* Records a write judged NEW and applied at index with result, at log
   time time_ms; creates its session when needed. Returns 0, or -1 when
   out of memory (the table is unchanged); never fails right after a
   successful qkv_sessions_reserve for the same client. */
int qkv_sessions_record(qkv_sessions_t *self, uint64_t client_id,
                        uint64_t client_seq, uint64_t hash, uint64_t index,
                        uint64_t result, uint64_t time_ms);

/* Log time reached time_ms (called for every applied entry, tagged or
   not): drops the sessions idle since before time_ms - ttl_ms. */
void qkv_sessions_tick(qkv_sessions_t *self, uint64_t time_ms);

/* Forgets everything (the node follows another cluster). */
void qkv_sessions_clear(qkv_sessions_t *self);

/* Appends the table's state to out (snapshots): everything that decides
   a later verdict, so a node that loads it judges every later entry as
   the node that saved it. Returns 0, or -1 when out of memory. */
int qkv_sessions_save(const qkv_sessions_t *self, qkv_buf_t *out);

/* Replaces the table with a state saved by qkv_sessions_save from data
   (size bytes; it may go on after the state: *used says where the state
   ends). Returns 0, or -1 when the bytes are not such a state or memory
   ran out (the table is then empty or partial: clear it). */
int qkv_sessions_load(qkv_sessions_t *self, const void *data, size_t size,
                      size_t *used);

/* Sessions and records held. */
size_t qkv_sessions_count(const qkv_sessions_t *self);
size_t qkv_sessions_records(const qkv_sessions_t *self);

#endif
