/*  qkv_dedup.h - the leader's memory of recent idempotent writes.

    A client may tag a write with (client_id, client_seq). The leader
    records the index it gave each tagged write, and the result once it
    applied (the key's seq for PUT, 1/0 for whether DELETE found the key).
    A retry with the same pair finds the record instead of appending the
    write again. Only the last `window` tagged writes are remembered; the
    oldest is forgotten first. Used by the replication actor only: no lock.
*/
#ifndef QKV_DEDUP_H
#define QKV_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t client_id;  /* non-zero */
    uint64_t client_seq; /* non-zero */
    uint64_t index;      /* entry the write was given */
    uint64_t result;     /* seq (PUT) or 1/0 (DELETE), once applied */
    bool applied;        /* result is known */
} qkv_dedup_rec_t;

typedef struct qkv_dedup_t qkv_dedup_t;

/* Returns a table remembering the last window (>= 1) writes, or NULL when
   out of memory. */
qkv_dedup_t *qkv_dedup_new(size_t window);
/* Destroys the table and nulls *self_p; safe on NULL. */
void qkv_dedup_destroy(qkv_dedup_t **self_p);

/* The record of (client_id, client_seq), or NULL when not remembered. The
   pointer is valid until the next qkv_dedup_add. */
const qkv_dedup_rec_t *qkv_dedup_find(qkv_dedup_t *self, uint64_t client_id,
                                      uint64_t client_seq);

/* Remembers a write given index (larger than every index added before),
   forgetting the oldest when full. The pair must not be remembered yet. */
void qkv_dedup_add(qkv_dedup_t *self, uint64_t client_id, uint64_t client_seq,
                   uint64_t index);

/* Records results of the entries first .. first + count - 1, just
   applied in order: results[i] belongs to index first + i. */
void qkv_dedup_applied(qkv_dedup_t *self, uint64_t first, size_t count,
                       const uint64_t *results);

/* Number of writes remembered. */
size_t qkv_dedup_count(const qkv_dedup_t *self);

#endif
