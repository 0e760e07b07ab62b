/*  qkv_log.h - the ordered replicated log, in memory.

    Entries are numbered from 1 with no gaps. The log owns them. Only the
    replication actor touches a log; it has no lock. A follower may drop the
    prefix it has applied (qkv_log_forget) to keep memory to the store's; the
    leader keeps everything, since a restarted follower is refilled from
    index 1 (until snapshots exist).
*/
#ifndef QKV_LOG_H
#define QKV_LOG_H

#include "qkv_msg.h"
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_log_t qkv_log_t;

/* Returns a new empty log, or NULL when out of memory. */
qkv_log_t *qkv_log_new(void);
/* Destroys the log and every entry, nulls *self_p; safe on NULL. */
void qkv_log_destroy(qkv_log_t **self_p);

/* Appends *entry_p, setting its index to last + 1, and takes it (nulls
   *entry_p). Returns the new index, or 0 when out of memory (the entry
   stays the caller's). */
uint64_t qkv_log_append(qkv_log_t *self, qkv_entry_t **entry_p);

/* Index of the last entry, 0 when empty. */
uint64_t qkv_log_last_index(const qkv_log_t *self);
/* Index of the first entry still held (1 unless a prefix was forgotten);
   last + 1 when nothing is held. */
uint64_t qkv_log_first_index(const qkv_log_t *self);

/* Entry at index, or NULL when not held. The log keeps ownership. */
const qkv_entry_t *qkv_log_get(const qkv_log_t *self, uint64_t index);

/* Frees entries up to and including index (no further than last). */
void qkv_log_forget(qkv_log_t *self, uint64_t index);

/* Frees every entry; the next append gets index 1. */
void qkv_log_clear(qkv_log_t *self);

#endif
