/*  qkv_log.h - the in-memory part of the replicated log.

    Entries are numbered from 1 with no gaps and held from first_index to
    last_index; the log owns them. Only the replication actor touches a
    log: it has no lock. The prefix before first_index has been dropped
    (a follower drops what it applied); the log still knows the term of
    the entry just before first_index, so log matching works right at
    the edge. The write-ahead log (qkv_wal.h) is its durable part; this
    is the tail kept in memory, back to the last snapshot.

    Invariant: first_index - 1 <= last_index.
*/
#ifndef QKV_LOG_H
#define QKV_LOG_H

#include "qkv_entry.h"
#include "qkv_ring.h"
#include <stddef.h>
#include <stdint.h>

/* term_at's answer for an index the log no longer (or never) knew */
#define QKV_TERM_UNKNOWN UINT64_MAX

typedef struct qkv_log_t qkv_log_t;

/* Returns a new empty log, or NULL when out of memory. */
qkv_log_t *qkv_log_new(void);
/* Destroys the log and every entry, nulls *self_p; safe on NULL. */
void qkv_log_destroy(qkv_log_t **self_p);

/* Appends *entry_p, setting its index to last + 1, and takes it (nulls
   *entry_p). Returns the new index, or 0 when out of memory (the entry
   stays the caller's). */
uint64_t qkv_log_append(qkv_log_t *self, qkv_entry_t **entry_p);

/* Index of the last entry, first_index - 1 when none is held. */
uint64_t qkv_log_last_index(const qkv_log_t *self);
/* Index of the first entry held (1 unless a prefix was dropped). */
uint64_t qkv_log_first_index(const qkv_log_t *self);

/* Bytes the held entries take (headers, keys, values, the ring's
   pointers), for MAX_MEMORY. */
size_t qkv_log_bytes(const qkv_log_t *self);

/* Entry at index, or NULL when not held. The log keeps ownership. */
const qkv_entry_t *qkv_log_get(const qkv_log_t *self, uint64_t index);

/* Term of the entry at index: 0 for index 0, the remembered term for
   first_index - 1, QKV_TERM_UNKNOWN below that or above last_index. */
uint64_t qkv_log_term_at(const qkv_log_t *self, uint64_t index);

/* Frees entries up to and including index (no further than last),
   remembering the term of the last one freed. */
void qkv_log_forget(qkv_log_t *self, uint64_t index);

/* Frees the entries from index on (index >= first_index): the log then
   ends at index - 1. */
void qkv_log_truncate(qkv_log_t *self, uint64_t index);

/* Frees every entry; the next append gets index 1. */
void qkv_log_clear(qkv_log_t *self);

/* Frees every entry; the log goes on after index, whose term was term (a
   snapshot was installed): the next append gets index + 1. */
void qkv_log_reset(qkv_log_t *self, uint64_t index, uint64_t term);

#endif
