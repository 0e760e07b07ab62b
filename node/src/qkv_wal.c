/*  qkv_wal.c - the write-ahead log (qkv_wal.h).

    Two sides. The actor encodes each turn's records into one buffer and
    writes it with one write(2) to the current segment; it remembers, per
    write, the byte position it reached and the last index it held (a
    batch). The writer thread waits for positions beyond what it made
    durable, takes the newest, fsyncs every file that may hold bytes up to
    it (segments retired since, the current one, the directory when a file
    was created) and publishes the position; the actor turns positions
    back into indexes through its batches. One fsync thus covers every
    write since the last one, however many turns they took (group
    commit), in the way etcd's WAL and Redis's AOF do.

    A failed write(2) (a full disk) cuts the segment back to where the
    write began and refuses until a retry succeeds: nothing half-written
    stays. A failed fsync taints every byte after the last good one
    (fsyncgate): the actor retires the segment, starts a new one and
    writes again from memory everything after the last durable entry;
    replay lets the later copy replace the earlier.
*/
#include "qkv_wal.h"
#include "qkv_buf.h"
#include "qkv_clock.h"
#include "qkv_hash.h"
#include "qkv_io.h"
#include "qkv_le.h"
#include "qkv_ring.h"
#include "qkv_say.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAGIC "qkv-wal\n"
#define S_VERSION 1
#define S_HEADER_BYTES 16 /* magic, version, crc of both */
#define S_FRAME_BYTES 8   /* crc32c, length */
#define S_STATE 1
#define S_ENTRY 2
#define S_STATE_BYTES (1 + 8 + 8) /* the smallest: before elections */
#define S_STATE_VOTE_BYTES (S_STATE_BYTES + 4 + 8 + 8)
#define S_ENTRY_FIXED (1 + 8 * 5 + 1 + 4 + 4)
/* the largest record: an entry with the largest key and value */
#define S_RECORD_MAX ((uint32_t)S_ENTRY_FIXED + (1u << 20) + (64u << 20))
#define S_RETRY_US 100000 /* a refused write is tried again after this */

const double qkv_wal_fsync_bounds_s[7] = {0.0005, 0.001, 0.002, 0.005,
                                          0.01,   0.05,  0.25};

const char *qkv_fsync_name(int policy) {
    return policy == QKV_FSYNC_ALWAYS     ? "always"
           : policy == QKV_FSYNC_EVERYSEC ? "everysec"
           : policy == QKV_FSYNC_NEVER    ? "never"
                                          : "?";
}

typedef struct {
    uint64_t seq;       /* number in the file name */
    uint64_t max_index; /* highest entry index it holds; 0 none */
    uint64_t bytes;     /* its size */
} s_segment_t;

typedef struct {
    uint64_t pos;   /* byte position (over all writes) after the batch */
    uint64_t index; /* last entry the batch held */
} s_batch_t;

struct qkv_wal_t {
    qkv_wal_options_t opt;
    char dir[4096];
    int dir_fd;
    /* actor side */
    int fd;              /* current segment */
    qkv_ring_t segments; /* s_segment_t, oldest first; last = current */
    qkv_ring_t batches;  /* s_batch_t not yet known durable */
    qkv_buf_t out;       /* records of this write */
    uint64_t written;    /* last index written */
    uint64_t pos;        /* bytes written over all time */
    uint64_t state_cluster, state_term; /* last STATE record */
    qkv_wal_vote_t state_vote;          /* ... its vote */
    qkv_wal_vote_t vote;                /* the vote to write next */
    uint64_t durable;                   /* last index known durable (always) */
    bool failed;                        /* the last write(2) was refused */
    int64_t retry_us;                   /* when to try again */
    bool roll;       /* start a new segment before the next write */
    char error[256]; /* why it cannot write */
    uint64_t write_errors;
    /* shared with the writer, under mutex */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    bool stop;
    uint64_t req_pos;     /* bytes to make durable */
    uint64_t req_entries; /* entries written over all time */
    uint64_t synced_pos;  /* bytes made durable */
    uint64_t synced_entries;
    int cur_fd;   /* the segment being written */
    int *retired; /* segments to fsync once more and close */
    size_t retired_count, retired_cap;
    bool dir_dirty;   /* a file was created or removed */
    bool sync_failed; /* an fsync failed: bytes after synced_pos are
                         suspect until the actor rolls */
    bool force_sync;  /* fsync even under FSYNC=never (the term) */
    bool stalled;     /* failpoint wal-stall: nothing more is synced */
    pthread_cond_t synced_cond; /* broadcast after each round */
    qkv_buf_t held;             /* hold failpoint: (fd, length, bytes) chunks */
    int event_fd;               /* writer -> actor */
    qkv_wal_stats_t stats;
};

/*  =====================================================================
    Encoding */

/* Appends a framed record of body_len bytes to out; returns its body to
   fill, or NULL when out of memory. s_seal computes the checksum. */
static uint8_t *s_frame(qkv_buf_t *out, size_t body_len) {
    if (qkv_buf_reserve(out, S_FRAME_BYTES + body_len) != 0)
        return NULL;
    uint8_t *frame = (uint8_t *)out->data + out->size;
    qkv_put_le32(frame + 4, (uint32_t)body_len);
    out->size += S_FRAME_BYTES + body_len;
    return frame + S_FRAME_BYTES;
}

static void s_seal(uint8_t *body, size_t body_len) {
    uint8_t *frame = body - S_FRAME_BYTES;
    qkv_put_le32(frame, qkv_crc32c(0, frame + 4, 4 + body_len));
}

static int s_encode_state(qkv_buf_t *out, uint64_t cluster, uint64_t term,
                          const qkv_wal_vote_t *v) {
    uint8_t *b = s_frame(out, S_STATE_VOTE_BYTES);
    if (!b)
        return -1;
    b[0] = S_STATE;
    qkv_put_le64(b + 1, cluster);
    qkv_put_le64(b + 9, term);
    qkv_put_le32(b + 17, v->vote);
    qkv_put_le64(b + 21, v->rejoin_term);
    qkv_put_le64(b + 29, v->rejoin_commit);
    s_seal(b, S_STATE_VOTE_BYTES);
    return 0;
}

static int s_encode_entry(qkv_buf_t *out, const qkv_entry_t *e) {
    size_t len = S_ENTRY_FIXED + e->key_len + e->value_len;
    uint8_t *b = s_frame(out, len);
    if (!b)
        return -1;
    b[0] = S_ENTRY;
    qkv_put_le64(b + 1, e->index);
    qkv_put_le64(b + 9, e->term);
    qkv_put_le64(b + 17, e->client_id);
    qkv_put_le64(b + 25, e->client_seq);
    qkv_put_le64(b + 33, e->time_ms);
    b[41] = e->op;
    qkv_put_le32(b + 42, e->key_len);
    qkv_put_le32(b + 46, e->value_len);
    memcpy(b + S_ENTRY_FIXED, e->data, e->key_len + e->value_len);
    s_seal(b, len);
    return 0;
}

static void s_header(uint8_t *h) {
    memcpy(h, S_MAGIC, 8);
    qkv_put_le32(h + 8, S_VERSION);
    qkv_put_le32(h + 12, qkv_crc32c(0, h, 12));
}

/*  =====================================================================
    Files */

static void s_seg_path(const qkv_wal_t *self, uint64_t seq, char *path,
                       size_t size) {
    snprintf(path, size, "%s/wal-%016" PRIx64 ".log", self->dir, seq);
}

static bool s_seg_name(const char *name, uint64_t *seq) {
    return strlen(name) == 4 + 16 + 4 && strncmp(name, "wal-", 4) == 0 &&
           strcmp(name + 20, ".log") == 0 &&
           qkv_parse_hex16(name + 4, seq) == 0;
}

static int s_cmp_seg(const void *a, const void *b) {
    uint64_t x = ((const s_segment_t *)a)->seq;
    uint64_t y = ((const s_segment_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/*  =====================================================================
    Replay */

typedef struct {
    qkv_log_t *log;
    uint64_t after;
    qkv_wal_replay_t *out;
} s_replay_t;

/* One entry record: replaces the log from its index when it is not the
   next one. Returns 0, or -1 with err set. */
static int s_replay_entry(s_replay_t *r, const uint8_t *b, uint32_t len,
                          s_segment_t *seg, char *err, size_t es) {
    uint32_t key_len = qkv_get_le32(b + 42), value_len = qkv_get_le32(b + 46);
    if ((uint64_t)S_ENTRY_FIXED + key_len + value_len != len ||
        b[41] < QKV_OP_PUT || b[41] > QKV_OP_MAX) {
        snprintf(err, es, "an entry record does not add up");
        return -1;
    }
    uint64_t index = qkv_get_le64(b + 1);
    if (index > seg->max_index)
        seg->max_index = index;
    r->out->records++;
    if (index <= r->after)
        return 0; /* in the snapshot */
    uint64_t last = qkv_log_last_index(r->log);
    if (index > last + 1) {
        snprintf(err, es,
                 "entry %" PRIu64 " follows entry %" PRIu64
                 ": entries are missing",
                 index, last);
        return -1;
    }
    if (index <= last)
        qkv_log_truncate(r->log, index);
    qkv_entry_t *e = qkv_entry_new((qkv_op_t)b[41], b + S_ENTRY_FIXED, key_len,
                                   b + S_ENTRY_FIXED + key_len, value_len);
    if (!e) {
        snprintf(err, es, "out of memory replaying entry %" PRIu64, index);
        return -1;
    }
    e->term = qkv_get_le64(b + 9);
    e->client_id = qkv_get_le64(b + 17);
    e->client_seq = qkv_get_le64(b + 25);
    e->time_ms = qkv_get_le64(b + 33);
    if (qkv_log_append(r->log, &e) == 0) {
        free(e);
        snprintf(err, es, "out of memory replaying entry %" PRIu64, index);
        return -1;
    }
    return 0;
}

/* Replays one segment. Returns the offset where it stops being valid
   (its size when whole) in *valid; -1 with err on a hard failure. *bad
   says why it stopped early ("" when whole). */
/* A segment read as far as replay needs: allocated room after the last
   record is not read (a 64 MiB segment holding a few records costs a few
   reads, not 64 MiB). */
typedef struct {
    int fd;
    uint8_t *buf;
    size_t have, cap, size; /* bytes read, allocated, in the file */
} s_file_t;

/* Makes the first n bytes (at most the file's) readable at f->buf.
   Returns 0, or -1 (errno) when reading fails. */
static int s_need(s_file_t *f, size_t n) {
    if (n > f->size)
        n = f->size;
    if (n <= f->have)
        return 0;
    if (n > f->cap) {
        size_t cap = f->cap ? f->cap : 1 << 20;
        while (cap < n)
            cap *= 2;
        if (cap > f->size)
            cap = f->size;
        uint8_t *grown = realloc(f->buf, cap);
        if (!grown) {
            errno = ENOMEM;
            return -1;
        }
        f->buf = grown;
        f->cap = cap;
    }
    /* read ahead up to what is allocated: fewer, larger reads */
    while (f->have < n) {
        ssize_t got =
            pread(f->fd, f->buf + f->have, f->cap - f->have, (off_t)f->have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* the file shrank under us */
            return -1;
        }
        f->have += (size_t)got;
    }
    return 0;
}

/* Whether a bad record at offset is the last thing written - a torn
   write a crash interrupted - rather than damage with good records after
   it: true when no whole, valid record starts anywhere after it (reads
   the rest of the file; only ever on a bad record). A length field
   that went bad cannot hide the records after it this way. */
static bool s_nothing_after(s_file_t *f, size_t offset) {
    if (s_need(f, f->size) != 0)
        return false;
    const uint8_t *d = f->buf;
    size_t end = f->size;
    while (end > offset && d[end - 1] == 0)
        end--; /* allocated room */
    for (size_t p = offset + 1; p + S_FRAME_BYTES < end; p++) {
        uint32_t len = qkv_get_le32(d + p + 4);
        uint8_t type = d[p + S_FRAME_BYTES];
        if (len < S_STATE_BYTES || len > end - p - S_FRAME_BYTES ||
            (type != S_STATE && type != S_ENTRY))
            continue;
        if (qkv_crc32c(0, d + p + 4, 4 + (size_t)len) == qkv_get_le32(d + p))
            return false;
    }
    return true;
}

/* Replays one segment. Returns the offset where it stops being valid
   (the end of its last record when whole) in *valid; -1 with err on a
   hard failure. *bad says why it stopped early ("" when whole); *at_end
   whether what stopped it was the last thing written. */
static int s_replay_segment(s_replay_t *r, const char *path, s_segment_t *seg,
                            size_t *valid, bool *at_end, char *bad, size_t bs,
                            char *err, size_t es) {
    s_file_t f = {open(path, O_RDONLY | O_CLOEXEC), NULL, 0, 0, 0};
    struct stat st;
    if (f.fd < 0 || fstat(f.fd, &st) != 0) {
        snprintf(err, es, "%s: cannot read: %s", path, strerror(errno));
        if (f.fd >= 0)
            close(f.fd);
        return -1;
    }
    f.size = (size_t)st.st_size;
    bad[0] = '\0';
    *at_end = true;
    size_t off = 0;
    int rc = 0;
    if (s_need(&f, S_HEADER_BYTES) != 0 && f.size >= S_HEADER_BYTES)
        goto unreadable;
    if (f.size < S_HEADER_BYTES || memcmp(f.buf, S_MAGIC, 8) != 0 ||
        qkv_get_le32(f.buf + 12) != qkv_crc32c(0, f.buf, 12)) {
        snprintf(bad, bs, "no valid header");
        goto done;
    }
    if (qkv_get_le32(f.buf + 8) != S_VERSION) {
        snprintf(err, es,
                 "%s: format version %u; this qkv reads version %d: "
                 "upgrade it",
                 path, qkv_get_le32(f.buf + 8), S_VERSION);
        rc = -1;
        goto done;
    }
    off = S_HEADER_BYTES;
    while (off < f.size) {
        size_t left = f.size - off;
        *at_end = true; /* until a whole record is seen to follow */
        if (left < S_FRAME_BYTES) {
            snprintf(bad, bs, "a record frame is cut short");
            *at_end = s_nothing_after(&f, off);
            break;
        }
        if (s_need(&f, off + S_FRAME_BYTES) != 0)
            goto unreadable;
        uint32_t len = qkv_get_le32(f.buf + off + 4);
        if (qkv_get_le32(f.buf + off) == 0 && len == 0) {
            /* the allocated room no record has reached yet: the end.
               (Records are appended in order; a record beyond a hole
               could only be one a power loss took the middle of, and
               was never fsynced: not durable, so not lost.) */
            break;
        }
        if (len == 0 || len > S_RECORD_MAX) {
            *at_end = s_nothing_after(&f, off);
            snprintf(bad, bs, "a record length of %u is out of range", len);
            break;
        }
        if (left - S_FRAME_BYTES < len) {
            snprintf(bad, bs, "a record is cut short");
            *at_end = s_nothing_after(&f, off);
            break;
        }
        if (s_need(&f, off + S_FRAME_BYTES + len) != 0)
            goto unreadable;
        const uint8_t *b = f.buf + off + S_FRAME_BYTES;
        if (qkv_crc32c(0, f.buf + off + 4, 4 + (size_t)len) !=
            qkv_get_le32(f.buf + off)) {
            *at_end = s_nothing_after(&f, off);
            snprintf(bad, bs, "a record's checksum does not match");
            break;
        }
        if (b[0] == S_STATE && len >= S_STATE_BYTES) {
            r->out->cluster_id = qkv_get_le64(b + 1);
            r->out->term = qkv_get_le64(b + 9);
            memset(&r->out->vote, 0, sizeof(r->out->vote));
            if (len >= S_STATE_VOTE_BYTES) {
                r->out->vote.vote = qkv_get_le32(b + 17);
                r->out->vote.rejoin_term = qkv_get_le64(b + 21);
                r->out->vote.rejoin_commit = qkv_get_le64(b + 29);
            }
        } else if (b[0] == S_ENTRY && len >= S_ENTRY_FIXED) {
            char why[200];
            if (s_replay_entry(r, b, len, seg, why, sizeof(why)) != 0) {
                snprintf(err, es, "%s at offset %zu: %s", path, off, why);
                rc = -1;
                goto done;
            }
        } else {
            *at_end = s_nothing_after(&f, off);
            snprintf(bad, bs, "a record of unknown type %u", b[0]);
            break;
        }
        off += S_FRAME_BYTES + len;
    }
    goto done;
unreadable:
    snprintf(err, es, "%s: cannot read: %s", path, strerror(errno));
    rc = -1;
done:
    free(f.buf);
    close(f.fd);
    *valid = off;
    /* what counts is what was written, not the room allocated */
    seg->bytes = off;
    r->out->bytes += off;
    return rc;
}

/* Lists the segments in dir, oldest first. */
static int s_list(qkv_wal_t *self, char *err, size_t es) {
    DIR *d = opendir(self->dir);
    if (!d) {
        snprintf(err, es, "%s: cannot open: %s", self->dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        if (!s_seg_name(de->d_name, &seq))
            continue;
        s_segment_t *s = qkv_ring_push(&self->segments);
        if (!s) {
            closedir(d);
            snprintf(err, es, "out of memory listing %s", self->dir);
            return -1;
        }
        *s = (s_segment_t){seq, 0, 0};
    }
    closedir(d);
    if (self->segments.count)
        qsort(qkv_ring_at(&self->segments, 0), self->segments.count,
              sizeof(s_segment_t), s_cmp_seg);
    return 0;
}

static s_segment_t *s_seg(qkv_wal_t *self, size_t i) {
    return qkv_ring_at(&self->segments, i);
}

/* Cuts segment i at offset valid and deletes every later one. */
static int s_cut(qkv_wal_t *self, size_t i, size_t valid, char *err,
                 size_t es) {
    char path[4200];
    /* segments after i go; i itself too when not even its header is whole */
    size_t keep = valid < S_HEADER_BYTES ? i : i + 1;
    if (keep > i) {
        s_seg_path(self, s_seg(self, i)->seq, path, sizeof(path));
        if (truncate(path, (off_t)valid) != 0) {
            snprintf(err, es, "%s: cannot cut at offset %zu: %s", path, valid,
                     strerror(errno));
            return -1;
        }
        s_seg(self, i)->bytes = valid;
    }
    while (self->segments.count > keep) {
        s_seg_path(self, s_seg(self, self->segments.count - 1)->seq, path,
                   sizeof(path));
        if (unlink(path) != 0) {
            snprintf(err, es, "%s: cannot delete: %s", path, strerror(errno));
            return -1;
        }
        qkv_ring_truncate(&self->segments, self->segments.count - 1);
    }
    return 0;
}

static int s_replay(qkv_wal_t *self, s_replay_t *r, char *err, size_t es) {
    if (s_list(self, err, es) != 0)
        return -1;
    r->out->segments = self->segments.count;
    for (size_t i = 0; i < self->segments.count; i++) {
        char path[4200], bad[128];
        s_seg_path(self, s_seg(self, i)->seq, path, sizeof(path));
        size_t valid;
        bool at_end;
        if (s_replay_segment(r, path, s_seg(self, i), &valid, &at_end, bad,
                             sizeof(bad), err, es) != 0)
            return -1;
        if (!bad[0])
            continue;
        /* A bad record: torn when it is the end of the newest segment
           (the write a crash interrupted); else the log is corrupt. */
        bool last = i + 1 == self->segments.count;
        bool torn = last && at_end;
        if (!torn && !self->opt.repair) {
            snprintf(err, es,
                     "%s at offset %zu: %s: the log is corrupt; start with "
                     "REPAIR_LOG=1 (--repair-log) to cut it there, losing "
                     "what follows",
                     path, valid, bad);
            return -1;
        }
        qkv_warn("%s at offset %zu: %s: %s", path, valid, bad,
                 torn ? "a torn last write, cut" : "cut (REPAIR_LOG)");
        if (s_cut(self, i, valid, err, es) != 0)
            return -1;
        r->out->cut = true;
        break;
    }
    return 0;
}

/*  =====================================================================
    The writer thread */

static void s_signal(qkv_wal_t *self) {
    uint64_t one = 1;
    ssize_t n = write(self->event_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero */
}

/* Writes held chunks (hold failpoint). Returns 0 or -1. */
static int s_flush_held(qkv_buf_t *held) {
    size_t off = 0;
    while (off + 8 <= held->size) {
        int fd;
        uint32_t len;
        memcpy(&fd, held->data + off, sizeof(fd));
        memcpy(&len, held->data + off + 4, sizeof(len));
        if (qkv_write_all(fd, held->data + off + 8, len) != 0)
            return -1;
        off += 8 + len;
    }
    held->size = 0;
    return 0;
}

static void s_observe(qkv_wal_t *self, int64_t us) {
    double s = (double)us / 1e6;
    self->stats.fsync_seconds += s;
    size_t b = 0;
    while (b < 7 && s > qkv_wal_fsync_bounds_s[b])
        b++;
    self->stats.fsync_le[b]++;
}

static void *s_writer(void *arg) {
    qkv_wal_t *self = arg;
    qkv_buf_t held = {0};
    int *fds = NULL;
    size_t fds_cap = 0;
    pthread_mutex_lock(&self->mutex);
    struct timespec last_round;
    clock_gettime(CLOCK_MONOTONIC, &last_round);
    for (;;) {
        bool sync = self->opt.fsync != QKV_FSYNC_NEVER;
        bool bytes = self->req_pos > self->synced_pos || self->held.size;
        /* never: the kernel flushes what was written; the writer only
           closes retired segments (and fsyncs a leader's term) */
        bool due = (bytes && (sync || self->stop)) || self->retired_count ||
                   self->dir_dirty || self->force_sync;
        if (self->stalled)
            due = false; /* failpoint: the disk hangs after start-up */
        if (self->stop && !due)
            break;
        if (!due || self->sync_failed) {
            if (self->stop)
                break;
            if (self->opt.fsync == QKV_FSYNC_EVERYSEC && !self->sync_failed) {
                /* writes do not wake it: look again within a second */
                struct timespec deadline;
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += 1;
                pthread_cond_timedwait(&self->cond, &self->mutex, &deadline);
            } else {
                pthread_cond_wait(&self->cond, &self->mutex);
            }
            continue;
        }
        if (self->opt.fsync == QKV_FSYNC_EVERYSEC && !self->stop &&
            !self->force_sync) {
            /* once a second: sleep out the second since the last round
               (writes do not wake this thread under everysec) */
            struct timespec deadline = last_round;
            deadline.tv_sec += 1;
            if (pthread_cond_timedwait(&self->cond, &self->mutex, &deadline) !=
                ETIMEDOUT)
                continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &last_round);
        uint64_t target = self->req_pos, entries = self->req_entries;
        bool forced = self->force_sync; /* this round covers the term */
        self->force_sync = false;
        sync = sync || forced;
        int cur = self->cur_fd;
        bool dir = self->dir_dirty;
        self->dir_dirty = false;
        size_t n = self->retired_count;
        if (n > fds_cap) {
            int *grown = realloc(fds, n * sizeof(*fds));
            if (!grown) {
                pthread_mutex_unlock(&self->mutex);
                usleep(10000);
                pthread_mutex_lock(&self->mutex);
                continue;
            }
            fds = grown;
            fds_cap = n;
        }
        if (n)
            memcpy(fds, self->retired, n * sizeof(*fds));
        self->retired_count = 0;
        qkv_buf_t swap = held;
        held = self->held;
        self->held = swap;
        pthread_mutex_unlock(&self->mutex);

        int64_t t0 = qkv_now_us();
        int rc = s_flush_held(&held);
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && sync && fdatasync(fds[i]) != 0)
                rc = -1;
            close(fds[i]);
        }
        if (rc == 0 && sync && cur >= 0 && fdatasync(cur) != 0)
            rc = -1;
        if (rc == 0 && sync && dir && fsync(self->dir_fd) != 0)
            rc = -1;
        int saved = errno;
        int64_t t1 = qkv_now_us();

        pthread_mutex_lock(&self->mutex);
        if (rc == 0) {
            if (forced)
                self->stalled = self->opt.stall;
            if (sync && target > self->synced_pos) {
                self->stats.fsyncs++;
                self->stats.entries_synced += entries - self->synced_entries;
                s_observe(self, t1 - t0);
            }
            if (target > self->synced_pos) {
                self->synced_pos = target;
                self->synced_entries = entries;
            }
        } else {
            qkv_warn("write-ahead log: fsync failed: %s; rewriting what it "
                     "held",
                     strerror(saved));
            self->stats.fsync_failures++;
            self->sync_failed = true;
            held.size = 0;
        }
        if (self->opt.fsync == QKV_FSYNC_ALWAYS || rc != 0)
            s_signal(self); /* the actor counts on fsyncs only here */
        pthread_cond_broadcast(&self->synced_cond);
    }
    pthread_mutex_unlock(&self->mutex);
    qkv_buf_free(&held);
    free(fds);
    return NULL;
}

/*  =====================================================================
    Segments (actor side) */

/* Starts a new segment: header and a STATE record, made durable with the
   directory by the writer. The old one is retired to the writer. */
static int s_roll(qkv_wal_t *self) {
    uint64_t seq = self->segments.count
                       ? s_seg(self, self->segments.count - 1)->seq + 1
                       : 1;
    char path[4200];
    s_seg_path(self, seq, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(self->error, sizeof(self->error), "cannot create %.200s: %s",
                 path, strerror(errno));
        return -1;
    }
    /* The whole segment allocated at once, as etcd's WAL does: appends
       then never change the file's size, so fdatasync writes the data
       and no inode. Where that fails (no room, no support), the file
       grows as it is written. */
    if (!self->opt.hold)
        (void)fallocate(fd, 0, 0, (off_t)self->opt.segment_bytes);
    qkv_buf_t head = {0};
    uint8_t h[S_HEADER_BYTES];
    s_header(h);
    if (qkv_buf_append(&head, h, sizeof(h)) != 0 ||
        s_encode_state(&head, self->state_cluster, self->state_term,
                       &self->state_vote) != 0 ||
        qkv_write_all(fd, head.data, head.size) != 0) {
        snprintf(self->error, sizeof(self->error), "cannot write %.200s: %s",
                 path, strerror(errno ? errno : ENOMEM));
        qkv_buf_free(&head);
        close(fd);
        unlink(path);
        return -1;
    }
    s_segment_t *s = qkv_ring_push(&self->segments);
    if (!s) {
        qkv_buf_free(&head);
        close(fd);
        unlink(path);
        snprintf(self->error, sizeof(self->error), "out of memory");
        return -1;
    }
    *s = (s_segment_t){seq, 0, head.size};
    self->stats.disk_bytes += head.size;
    self->pos += head.size;
    qkv_buf_free(&head);
    pthread_mutex_lock(&self->mutex);
    if (self->cur_fd >= 0) {
        if (self->retired_count == self->retired_cap) {
            size_t cap = self->retired_cap ? self->retired_cap * 2 : 8;
            int *grown = realloc(self->retired, cap * sizeof(int));
            if (grown) {
                self->retired = grown;
                self->retired_cap = cap;
            }
        }
        if (self->retired_count < self->retired_cap)
            self->retired[self->retired_count++] = self->cur_fd;
        else
            close(self->cur_fd); /* out of memory: no fsync for it */
    }
    self->cur_fd = fd;
    self->fd = fd;
    self->dir_dirty = true;
    self->req_pos = self->pos;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    self->roll = false;
    return 0;
}

/*  =====================================================================
    Life cycle */

qkv_wal_t *qkv_wal_open(const qkv_wal_options_t *opt, uint64_t after,
                        qkv_log_t *log, qkv_wal_replay_t *replay, char *err,
                        size_t es) {
    memset(replay, 0, sizeof(*replay));
    qkv_wal_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, es, "out of memory opening the write-ahead log");
        return NULL;
    }
    self->opt = *opt;
    snprintf(self->dir, sizeof(self->dir), "%s", opt->dir);
    self->opt.dir = self->dir;
    self->dir_fd = self->fd = self->cur_fd = self->event_fd = -1;
    qkv_ring_init(&self->segments, sizeof(s_segment_t));
    qkv_ring_init(&self->batches, sizeof(s_batch_t));
    pthread_mutex_init(&self->mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&self->synced_cond, NULL);
    self->dir_fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        snprintf(err, es, "%s: cannot open: %s", self->dir, strerror(errno));
        qkv_wal_close(&self);
        return NULL;
    }
    s_replay_t r = {log, after, replay};
    if (s_replay(self, &r, err, es) != 0) {
        qkv_wal_close(&self);
        return NULL;
    }
    for (size_t i = 0; i < self->segments.count; i++)
        self->stats.disk_bytes += s_seg(self, i)->bytes;
    self->written = self->durable = qkv_log_last_index(log);
    self->state_cluster = replay->cluster_id;
    self->state_term = replay->term;
    self->state_vote = self->vote = replay->vote;
    self->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->event_fd < 0) {
        snprintf(err, es, "cannot create an eventfd: %s", strerror(errno));
        qkv_wal_close(&self);
        return NULL;
    }
    if (s_roll(self) != 0) {
        snprintf(err, es, "%s", self->error);
        qkv_wal_close(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, s_writer, self) != 0) {
        snprintf(err, es, "cannot start the log writer thread");
        qkv_wal_close(&self);
        return NULL;
    }
    self->thread_started = true;
    return self;
}

void qkv_wal_close(qkv_wal_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_wal_t *self = *self_p;
    if (self->thread_started) {
        pthread_mutex_lock(&self->mutex);
        self->stop = true;
        pthread_cond_signal(&self->cond);
        pthread_mutex_unlock(&self->mutex);
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < self->retired_count; i++)
        close(self->retired[i]);
    free(self->retired);
    if (self->cur_fd >= 0)
        close(self->cur_fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    if (self->event_fd >= 0)
        close(self->event_fd);
    qkv_ring_free(&self->segments);
    qkv_ring_free(&self->batches);
    qkv_buf_free(&self->out);
    qkv_buf_free(&self->held);
    pthread_mutex_destroy(&self->mutex);
    pthread_cond_destroy(&self->cond);
    pthread_cond_destroy(&self->synced_cond);
    free(self);
    *self_p = NULL;
}

void qkv_wal_set_vote(qkv_wal_t *self, const qkv_wal_vote_t *vote) {
    self->vote = *vote;
}

int qkv_wal_persist_state(qkv_wal_t *self, const qkv_log_t *log,
                          uint64_t cluster_id, uint64_t term, char *err,
                          size_t es) {
    if (qkv_wal_write(self, log, cluster_id, term, qkv_now_us()) != 0) {
        snprintf(err, es, "%s", self->error);
        return -1;
    }
    pthread_mutex_lock(&self->mutex);
    uint64_t target = self->pos;
    self->force_sync = true;
    pthread_cond_signal(&self->cond);
    while (self->synced_pos < target && !self->sync_failed)
        pthread_cond_wait(&self->synced_cond, &self->mutex);
    bool failed = self->sync_failed;
    pthread_mutex_unlock(&self->mutex);
    if (failed) {
        snprintf(err, es, "cannot fsync the write-ahead log in %.200s",
                 self->dir);
        return -1;
    }
    return 0;
}

/*  =====================================================================
    Writing */

static void s_refuse(qkv_wal_t *self, int64_t now, const char *what, int e) {
    if (!self->failed)
        qkv_warn("write-ahead log: %s: %s; refusing writes until it works",
                 what, strerror(e));
    snprintf(self->error, sizeof(self->error), "the write-ahead log %s: %s",
             what, strerror(e));
    self->failed = true;
    self->write_errors++;
    self->retry_us = now + S_RETRY_US;
}

int qkv_wal_write(qkv_wal_t *self, const qkv_log_t *log, uint64_t cluster_id,
                  uint64_t term, int64_t now) {
    uint64_t last = qkv_log_last_index(log);
    bool state = cluster_id != self->state_cluster ||
                 term != self->state_term ||
                 memcmp(&self->vote, &self->state_vote, sizeof(self->vote));
    if (!state && self->written >= last && !self->roll)
        return 0;
    if (self->failed && now < self->retry_us)
        return -1;
    if (self->roll || s_seg(self, self->segments.count - 1)->bytes >=
                          self->opt.segment_bytes) {
        if (s_roll(self) != 0) {
            s_refuse(self, now, "cannot start a segment", errno);
            return -1;
        }
    }
    self->out.size = 0;
    uint64_t from = self->written + 1;
    if (from < qkv_log_first_index(log))
        from = qkv_log_first_index(log);
    uint64_t to = from - 1;
    if (state && s_encode_state(&self->out, cluster_id, term, &self->vote) != 0)
        goto oom;
    for (uint64_t i = from; i <= last; i++) {
        if (s_encode_entry(&self->out, qkv_log_get(log, i)) != 0)
            goto oom;
        to = i;
        if (self->out.size >= (8u << 20))
            break; /* the rest in the next write */
    }
    s_segment_t *seg = s_seg(self, self->segments.count - 1);
    if (self->opt.hold) {
        /* failpoint: the bytes wait in user space for the writer */
        pthread_mutex_lock(&self->mutex);
        int fd = self->fd;
        uint32_t len = (uint32_t)self->out.size;
        int rc = qkv_buf_append(&self->held, &fd, sizeof(fd));
        rc = rc ? rc : qkv_buf_append(&self->held, &len, sizeof(len));
        rc = rc ? rc : qkv_buf_append(&self->held, self->out.data, len);
        pthread_mutex_unlock(&self->mutex);
        if (rc != 0)
            goto oom;
    } else if (qkv_write_all(self->fd, self->out.data, self->out.size) != 0) {
        int e = errno;
        /* nothing half-written stays */
        if (ftruncate(self->fd, (off_t)seg->bytes) != 0 ||
            lseek(self->fd, (off_t)seg->bytes, SEEK_SET) < 0)
            self->roll = true;
        s_refuse(self, now, "cannot write", e);
        return -1;
    }
    seg->bytes += self->out.size;
    if (to > seg->max_index)
        seg->max_index = to;
    self->stats.disk_bytes += self->out.size;
    self->pos += self->out.size;
    if (to >= from)
        self->written = to;
    self->state_cluster = cluster_id;
    self->state_term = term;
    self->state_vote = self->vote;
    bool always = self->opt.fsync == QKV_FSYNC_ALWAYS;
    s_batch_t *b = always ? qkv_ring_push(&self->batches) : NULL;
    if (b)
        *b = (s_batch_t){self->pos, self->written};
    pthread_mutex_lock(&self->mutex);
    self->req_pos = self->pos;
    self->req_entries += to >= from ? to - from + 1 : 0;
    if (always)
        pthread_cond_signal(&self->cond); /* else it keeps its own time */
    pthread_mutex_unlock(&self->mutex);
    if (self->failed)
        qkv_info("write-ahead log: writing again");
    self->failed = false;
    self->error[0] = '\0';
    return 0;
oom:
    s_refuse(self, now, "is out of memory", ENOMEM);
    return -1;
}

void qkv_wal_truncated(qkv_wal_t *self, uint64_t index) {
    if (index == 0)
        return;
    if (self->written >= index)
        self->written = index - 1;
    if (self->durable >= index)
        self->durable = index - 1;
    for (size_t i = 0; i < self->batches.count; i++) {
        s_batch_t *b = qkv_ring_at(&self->batches, i);
        if (b->index >= index)
            b->index = index - 1;
    }
}

void qkv_wal_restart_at(qkv_wal_t *self, uint64_t index) {
    self->written = self->durable = index;
    qkv_ring_truncate(&self->batches, 0);
    self->roll = true;
}

uint64_t qkv_wal_disk_bytes(const qkv_wal_t *self) {
    return self->stats.disk_bytes; /* the actor's own counter */
}

uint64_t qkv_wal_written(const qkv_wal_t *self) {
    return self->written;
}

int qkv_wal_event_fd(const qkv_wal_t *self) {
    return self->event_fd;
}

uint64_t qkv_wal_durable(qkv_wal_t *self, const qkv_log_t *log, int64_t now) {
    uint64_t count;
    ssize_t n = read(self->event_fd, &count, sizeof(count));
    (void)n;
    pthread_mutex_lock(&self->mutex);
    uint64_t synced = self->synced_pos;
    bool failed = self->sync_failed;
    pthread_mutex_unlock(&self->mutex);
    if (failed) {
        /* fsyncgate: what was not fsynced is written again, in a new
           segment, from memory */
        qkv_ring_truncate(&self->batches, 0);
        self->written = self->durable;
        self->roll = true;
        pthread_mutex_lock(&self->mutex);
        self->sync_failed = false;
        pthread_mutex_unlock(&self->mutex);
        qkv_wal_write(self, log, self->state_cluster, self->state_term, now);
    }
    while (self->batches.count) {
        s_batch_t *b = qkv_ring_at(&self->batches, 0);
        if (b->pos > synced)
            break;
        if (b->index > self->durable)
            self->durable = b->index;
        qkv_ring_pop(&self->batches, 1);
    }
    if (self->opt.fsync != QKV_FSYNC_ALWAYS)
        return self->written;
    return self->durable < self->written ? self->durable : self->written;
}

const char *qkv_wal_error(const qkv_wal_t *self) {
    return self->failed ? self->error : "";
}

int64_t qkv_wal_next_due(const qkv_wal_t *self) {
    return self->failed ? self->retry_us : 0;
}

void qkv_wal_compact(qkv_wal_t *self, uint64_t index) {
    size_t drop = 0;
    while (drop + 1 < self->segments.count &&
           s_seg(self, drop)->max_index <= index)
        drop++;
    for (size_t i = 0; i < drop; i++) {
        char path[4200];
        s_seg_path(self, s_seg(self, i)->seq, path, sizeof(path));
        if (unlink(path) != 0) {
            qkv_warn("cannot delete %s: %s", path, strerror(errno));
            drop = i;
            break;
        }
        self->stats.disk_bytes -= s_seg(self, i)->bytes;
    }
    if (drop) {
        qkv_ring_pop(&self->segments, drop);
        pthread_mutex_lock(&self->mutex);
        self->dir_dirty = true;
        pthread_cond_signal(&self->cond);
        pthread_mutex_unlock(&self->mutex);
    }
}

void qkv_wal_stats(qkv_wal_t *self, qkv_wal_stats_t *stats) {
    pthread_mutex_lock(&self->mutex);
    *stats = self->stats;
    pthread_mutex_unlock(&self->mutex);
    stats->write_errors = self->write_errors;
}

void qkv_wal_roll(qkv_wal_t *self) {
    self->roll = true;
}
