/*  qkv_store.h - the key-value state a node serves reads from.

    The replication actor is its only writer (it applies committed entries);
    HTTP workers read it concurrently. One reader-writer lock (writer
    preferred) guards it; no caller ever holds it across I/O: reads copy the
    value out, dumps visit a bounded chunk per call.

    Each key keeps its value, its seq (times written since it was created or
    the store was reset) and the index of the entry that last wrote it.
    Memory: one allocation per key holding header, key and value, plus about
    14 bytes of table per key.
*/
#ifndef QKV_STORE_H
#define QKV_STORE_H

#include "qkv_buf.h"
#include "qkv_entry.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_store_t qkv_store_t;

/* Returns a new empty store, or NULL when out of memory. */
qkv_store_t *qkv_store_new(void);
/* Destroys the store and nulls *self_p; safe on NULL. */
void qkv_store_destroy(qkv_store_t **self_p);

/* Applies one committed entry in log order: PUT sets the key and bumps its
   seq, DELETE removes it, RESET empties the store; applied_index becomes
   entry->index. Sets *seq to the key's new seq for PUT, to 1 for a
   DELETE that removed a key and 0 for one that found none, to 0 for
   RESET.
   Returns 0, or -1 when out of memory (nothing changed). */
int qkv_store_apply(qkv_store_t *self, const qkv_entry_t *entry, uint64_t *seq);

/* Applying many entries under one hold of the write lock: begin, then any
   number of apply_locked and skip_locked, then end. Only the thread that
   called begin may call the others, and it must call end. */
void qkv_store_write_begin(qkv_store_t *self);
/* As qkv_store_apply, with the write lock held. */
int qkv_store_apply_locked(qkv_store_t *self, const qkv_entry_t *entry,
                           uint64_t *seq);
/* An entry that changes no key (a refused retry): applied_index becomes
   index. */
void qkv_store_skip_locked(qkv_store_t *self, uint64_t index);
void qkv_store_write_end(qkv_store_t *self);
/* Loading a snapshot, with the write lock held: sets the PUT entry's key
   to its value with this seq (>= 1) and entry->index as the index that
   wrote it. Returns 0, or -1 when out of memory. */
int qkv_store_load_locked(qkv_store_t *self, const qkv_entry_t *entry,
                          uint64_t seq);

/* Drops every key and sets applied_index to 0 (another cluster). */
void qkv_store_clear(qkv_store_t *self);

/* Looks key up. When found, copies the value into value (replacing its
   content), sets *seq and *index and returns 1; returns 0 when absent and
   -1 when out of memory. */
int qkv_store_get(qkv_store_t *self, const char *key, size_t key_len,
                  qkv_buf_t *value, uint64_t *seq, uint64_t *index);

/* Number of keys and the index of the last entry applied. */
size_t qkv_store_count(qkv_store_t *self);
uint64_t qkv_store_applied_index(qkv_store_t *self);

/* Called for each key a dump visits, under the store's read lock: copy what
   you need and return quickly. */
typedef void(qkv_store_visit_fn)(void *arg, const char *key, size_t key_len,
                                 const char *value, size_t value_len,
                                 uint64_t seq, uint64_t index);

/* A dump in progress. While one is open keys keep their place, so a dump
   visits each key at most once; keys written during it may or may not be
   visited. */
typedef struct qkv_store_cursor_t qkv_store_cursor_t;

/* Opens a dump; *applied_index and *count are the values when it began.
   Returns NULL when out of memory. */
qkv_store_cursor_t *
qkv_store_cursor_new(qkv_store_t *self, uint64_t *applied_index, size_t *count);
/* Visits up to max_keys more keys; returns how many it visited, 0 at the
   end. */
size_t qkv_store_cursor_next(qkv_store_cursor_t *self, size_t max_keys,
                             qkv_store_visit_fn *visit, void *arg);
/* Closes the dump and nulls *self_p; safe on NULL. */
void qkv_store_cursor_destroy(qkv_store_cursor_t **self_p);

/* A stateless walk for pulled dumps: visits keys from position *cursor
   on (0 = the start), at most max_keys, and stops after the key that
   brings the key and value bytes visited to max_bytes or more. Sets
   *cursor to the position to go on from, 0 when the walk reached the end.
   Returns the keys visited. Between calls keys may move: a key deleted
   and re-created during a walk may be visited twice. */
size_t qkv_store_scan(qkv_store_t *self, uint64_t *cursor, size_t max_keys,
                      size_t max_bytes, qkv_store_visit_fn *visit, void *arg);

/* Bytes the store holds beyond keys and values (table, headers, malloc's
   own overhead, estimated); for the memory benchmark and /metrics. */
size_t qkv_store_overhead_bytes(qkv_store_t *self);

/* Every byte the store holds: keys, values and the overhead above; for
   MAX_MEMORY. */
size_t qkv_store_bytes(qkv_store_t *self);

#endif
