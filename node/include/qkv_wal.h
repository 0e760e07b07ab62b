/*  qkv_wal.h - the write-ahead log: the durable part of the replicated
    log, in segment files under the data directory.

    The replication actor writes each turn's new entries with one write(2)
    (qkv_wal_write); a writer thread of the log's own makes them durable
    with one fsync for everything written since the last (group commit)
    and reports "durable up to i" through an eventfd the actor polls. So
    fsync never runs on the actor's thread, and the leader's own write
    runs while the same entries travel to the followers.

    Files (docs/DATA.md has the byte layout): wal-SEQ.log, SEQ a 16-digit
    hex number counting segments. A segment starts with a header, then a
    STATE record (cluster id, term), then records, each framed as
    crc32c, length, body. A new segment starts at every start-up, when the
    current one passes segment_bytes, after a truncation of the log, and
    after a failed fsync (fsyncgate: what was not fsynced is written again
    from memory into a new file, never trusted). Replay reads the segments
    in order; an entry whose index is at or below the last one replayed
    replaces the log from that index.

    FSYNC: always - durable means fsynced; everysec - the writer fsyncs
    once a second, durable means written; never - the kernel decides,
    durable means written. The term and cluster id go through the same
    records; under always they are durable before any entry after them.

    Not thread-safe: one actor calls everything but the writer thread.
*/
#ifndef QKV_WAL_H
#define QKV_WAL_H

#include "qkv_log.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QKV_FSYNC_ALWAYS = 0,
    QKV_FSYNC_EVERYSEC = 1,
    QKV_FSYNC_NEVER = 2
} qkv_fsync_t;

/* "always", "everysec", "never"; "?" for anything else. */
const char *qkv_fsync_name(int policy);

typedef struct {
    const char *dir;        /* the data directory (exists) */
    qkv_fsync_t fsync;      /* FSYNC */
    bool repair;            /* cut the log at a corrupt record instead of
                               refusing to start (REPAIR_LOG) */
    bool hold;              /* failpoint (test builds): records stay in user
                               space until the writer fsyncs them, so a
                               kill -9 loses them as a power loss would */
    bool stall;             /* failpoint: with hold, the writer never makes
                               anything durable (a disk that hangs) */
    uint64_t segment_bytes; /* a new segment after this many bytes */
} qkv_wal_options_t;

/* Elections' part of a STATE record (zero before elections). */
typedef struct {
    uint32_t vote;          /* in term: the PEERS index + 1 voted for; 0
                               none */
    uint32_t pad;           /* zero */
    uint64_t rejoin_term;   /* rejoining after an empty start: see */
    uint64_t rejoin_commit; /* qkv_core_config_t */
} qkv_wal_vote_t;

/* What replay found. */
typedef struct {
    uint64_t cluster_id, term; /* newest STATE record; 0 when none */
    qkv_wal_vote_t vote;       /* ... and its vote */
    uint64_t records;          /* entry records read */
    uint64_t bytes;            /* bytes of every segment */
    size_t segments;           /* segment files */
    bool cut;                  /* a torn tail (or, with repair, a corrupt
                                  record) was cut */
} qkv_wal_replay_t;

typedef struct {
    uint64_t fsyncs;         /* fsync rounds done */
    uint64_t fsync_failures; /* fsync rounds that failed */
    uint64_t entries_synced; /* entries those rounds made durable */
    double fsync_seconds;    /* time spent in them */
    uint64_t fsync_le[8];    /* non-cumulative histogram, bounds below */
    uint64_t disk_bytes;     /* bytes in segment files */
    uint64_t write_errors;   /* write(2) calls that failed */
} qkv_wal_stats_t;
extern const double qkv_wal_fsync_bounds_s[7];

typedef struct qkv_wal_t qkv_wal_t;

/* Opens the log in opt->dir and replays it into log, which must be empty
   and start right after after (the snapshot's index): entries at or
   below after are skipped. Cuts a torn last record (with a log line);
   refuses a corrupt record before the end with its file and offset in
   err (unless opt->repair: then cuts the log there). Starts a new segment
   and the writer thread. Returns NULL with err set on failure. */
qkv_wal_t *qkv_wal_open(const qkv_wal_options_t *opt, uint64_t after,
                        qkv_log_t *log, qkv_wal_replay_t *replay, char *err,
                        size_t err_size);
/* Makes what was written durable (under always), stops the writer and
   closes the files; nulls *self_p; safe on NULL. */
void qkv_wal_close(qkv_wal_t **self_p);

/* Writes, with one write(2), a STATE record when (cluster_id, term)
   changed since the last, then the entries of log after the last one
   written. Returns 0, or -1 when the disk refused (qkv_wal_error says
   why; nothing half-written stays, and the next call after
   qkv_wal_next_due tries again). */
int qkv_wal_write(qkv_wal_t *self, const qkv_log_t *log, uint64_t cluster_id,
                  uint64_t term, int64_t now);

/* Writes what log holds beyond what was written (at start-up: nothing)
   and a STATE record (cluster_id, term), and waits until they are
   fsynced, whatever FSYNC says: a leader's term is durable before it
   serves. Returns 0, or -1 with err. */
/* The vote the next STATE record carries: the next qkv_wal_write writes
   one when it differs from the last. */
void qkv_wal_set_vote(qkv_wal_t *self, const qkv_wal_vote_t *vote);

int qkv_wal_persist_state(qkv_wal_t *self, const qkv_log_t *log,
                          uint64_t cluster_id, uint64_t term, char *err,
                          size_t err_size);

/* The log dropped its entries from index on: they no longer count as
   written or durable. */
void qkv_wal_truncated(qkv_wal_t *self, uint64_t index);

/* The log now starts after index (a snapshot was installed): the next
   entry written is index + 1, in a new segment. */
void qkv_wal_restart_at(qkv_wal_t *self, uint64_t index);

/* Bytes of log segments on disk (what was written; the actor's thread). */
uint64_t qkv_wal_disk_bytes(const qkv_wal_t *self);

/* The last entry written. */
uint64_t qkv_wal_written(const qkv_wal_t *self);

/* The eventfd the writer signals when it made more durable (or failed). */
int qkv_wal_event_fd(const qkv_wal_t *self);

/* Reads the writer's reports: returns the last entry durable under the
   FSYNC policy. After a failed fsync, starts a new segment and rewrites
   from memory what was not made durable. */
uint64_t qkv_wal_durable(qkv_wal_t *self, const qkv_log_t *log, int64_t now);

/* Why the log cannot write ("" when it can). */
const char *qkv_wal_error(const qkv_wal_t *self);

/* When the actor should call qkv_wal_write again after a refusal; 0 when
   nothing waits. */
int64_t qkv_wal_next_due(const qkv_wal_t *self);

/* The next write starts a new segment (a snapshot began: the segments
   before can go once it is durable). */
void qkv_wal_roll(qkv_wal_t *self);

/* Deletes the oldest segments whose entries are all at or below index
   (covered by a durable snapshot). */
void qkv_wal_compact(qkv_wal_t *self, uint64_t index);

void qkv_wal_stats(qkv_wal_t *self, qkv_wal_stats_t *stats);

#endif
