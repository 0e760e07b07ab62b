/*  qkv_snap.h - snapshots: the state machine (store and client sessions)
    as of one log index, as one image of bytes, and the files that hold
    them.

    An image (docs/DATA.md has the layout): a header (magic, version,
    cluster id, index, the term of the entry at index, key count), every
    key with its value, seq and index, the sessions (qkv_sessions_save),
    and a CRC-32C of everything before it. The same bytes are the file
    snap-INDEX.snap and what a leader sends a follower behind its log.

    A node's own snapshots are written by a forked child (copy-on-write:
    the state as of the fork, while the node goes on, as Redis's BGSAVE);
    an image received from a leader is written by the saver thread. Both
    write under a temporary name, fsync, rename, fsync the directory and
    delete older snapshots; the saver thread reports through an eventfd.
    A crash at any moment leaves the previous snapshot or the new one,
    whole.
*/
#ifndef QKV_SNAP_H
#define QKV_SNAP_H

#include "qkv_buf.h"
#include "qkv_sessions.h"
#include "qkv_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t cluster_id; /* the cluster the state belongs to */
    uint64_t index;      /* the last entry it holds */
    uint64_t term;       /* the term of that entry */
    uint64_t keys;       /* keys in it */
} qkv_snap_meta_t;

/* Encodes the store (applied up to meta->index) and the sessions into out
   (replacing its content); sets meta->keys. Returns 0, or -1 when out of
   memory. */
int qkv_snap_encode(qkv_store_t *store, const qkv_sessions_t *sessions,
                    qkv_snap_meta_t *meta, qkv_buf_t *out);

/* Checks an image (size bytes: bounds, version, checksum) and reads its
   meta. Returns 0, or -1 with why. */
int qkv_snap_check(const void *data, size_t size, qkv_snap_meta_t *meta,
                   char *why, size_t why_size);

/* Replaces store and sessions with a checked image: the store's applied
   index becomes the image's index. Returns 0, or -1 with why (out of
   memory, or bytes that do not add up): store and sessions must then be
   cleared. */
int qkv_snap_apply(const void *data, size_t size, qkv_store_t *store,
                   qkv_sessions_t *sessions, char *why, size_t why_size);

/* Loads the newest valid snapshot file of dir into store and sessions
   (a damaged newest one is reported and the one before it tried).
   Returns 0 with *meta (index 0: no snapshot) and *bytes (its size), or
   -1 with err. */
int qkv_snap_load_newest(const char *dir, qkv_store_t *store,
                         qkv_sessions_t *sessions, qkv_snap_meta_t *meta,
                         uint64_t *bytes, char *err, size_t err_size);

/* Deletes every snapshot file of dir (the node follows another cluster). */
void qkv_snap_remove_all(const char *dir);

/*  ---------------------------------------------------------------------
    The saver thread */

typedef struct qkv_snap_saver_t qkv_snap_saver_t;

/* Starts a saver for dir; sync: fsync files and directory (FSYNC is not
   never). Returns NULL when out of memory or no thread. */
qkv_snap_saver_t *qkv_snap_saver_new(const char *dir, bool sync);
/* Waits for a save under way, stops the thread; nulls *self_p. */
void qkv_snap_saver_destroy(qkv_snap_saver_t **self_p);

/* The eventfd it signals when a save ends. */
int qkv_snap_saver_fd(const qkv_snap_saver_t *self);

/* True while a save is under way. */
bool qkv_snap_saver_busy(qkv_snap_saver_t *self);

/* Starts saving image (taken: *image is left empty) as the snapshot of
   index. Returns false when a save is under way (image untouched). */
bool qkv_snap_saver_save(qkv_snap_saver_t *self, qkv_buf_t *image,
                         uint64_t index);

/* Starts saving a snapshot of store and sessions as applied now
   (meta->index must be the store's applied index; cluster_id and term
   set) the way Redis's BGSAVE does: a forked child, a copy-on-write image
   of the process, encodes and writes it while the node goes on; the
   saver thread waits for the child. Returns false when a save is under
   way or fork failed. */
bool qkv_snap_saver_fork(qkv_snap_saver_t *self, qkv_store_t *store,
                         const qkv_sessions_t *sessions,
                         const qkv_snap_meta_t *meta);

/* Reads the snapshot file of index (for a follower behind the log) on
   the saver thread; its eventfd fires when done. */
void qkv_snap_saver_load(qkv_snap_saver_t *self, uint64_t index);

/* Once read: moves the bytes into *image (its old content freed) and
   returns 1; 0 while reading goes on; -1 when it failed (a newer snapshot
   replaced the file meanwhile): ask again. */
int qkv_snap_saver_loaded(qkv_snap_saver_t *self, qkv_buf_t *image);

/* After its eventfd fired: the index of the save that ended and is
   durable (0: none ended, or it failed: why says so), and its size. */
uint64_t qkv_snap_saver_done(qkv_snap_saver_t *self, uint64_t *bytes, char *why,
                             size_t why_size);

#endif
