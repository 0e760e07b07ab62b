/*  test_wal.c - the write-ahead log (node/include/qkv_wal.h) and the
    snapshot images and files (node/include/qkv_snap.h), driven directly
    in a temporary directory, without processes.

    WAL: a round trip of every entry field and the STATE record, a term
    change replayed, torn tails (cut short, a few garbage bytes, a zero
    tail) cut once, a corrupt record refused with its file and offset and
    cut with repair, a truncated suffix replaced by later entries, entries
    covered by a snapshot skipped, writing on after an installed snapshot
    (restart_at, FSYNC never), and compaction of old segments.
    Snapshots: an image round trip of store and sessions, damaged and
    short images refused, the saver's files (older ones deleted, temporary
    leftovers ignored), and falling back to an older file when the newest
    is damaged, among more files than the loader looks at.
*/
#include "kit.h"
#include "qkv_clock.h"
#include "qkv_hash.h"
#include "qkv_log.h"
#include "qkv_sessions.h"
#include "qkv_snap.h"
#include "qkv_store.h"
#include "qkv_wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER 0x5eed1234abcdULL

/*  =====================================================================
    Helpers */

/* A fresh temporary directory; the test removes it with kit_rmtree. */
static void s_tmpdir(char dir[64]) {
    snprintf(dir, 64, "/tmp/qkv-test-wal-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
}

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The content of entry i of term term: every field a function of both,
   so a replayed entry can be checked against what was written. */
static qkv_op_t s_op(uint64_t i) {
    return i % 7 == 0 ? QKV_OP_DELETE : i % 11 == 0 ? QKV_OP_NOOP : QKV_OP_PUT;
}

static size_t s_key(uint64_t i, char *key, size_t size) {
    if (s_op(i) == QKV_OP_NOOP)
        return 0;
    int n = snprintf(key, size, "key-%04" PRIu64 "-", i);
    key[n] = '\0'; /* a NUL inside the key */
    n++;
    n += snprintf(key + n, size - (size_t)n, "x");
    return (size_t)n;
}

static size_t s_value(uint64_t i, uint64_t term, char *value, size_t size) {
    if (s_op(i) != QKV_OP_PUT)
        return 0;
    return (size_t)snprintf(
        value, size, "value of %" PRIu64 " in term %" PRIu64 " %.*s", i, term,
        (int)(i % 40), "........................................");
}

/* Appends entry i of term to log and checks the index it got. */
static void s_append(qkv_log_t *log, uint64_t i, uint64_t term) {
    char key[64], value[128];
    size_t kl = s_key(i, key, sizeof(key));
    size_t vl = s_value(i, term, value, sizeof(value));
    qkv_entry_t *e = qkv_entry_new(s_op(i), key, kl, value, vl);
    CU_ASSERT_FATAL(e != NULL);
    e->term = term;
    e->client_id = 1000 + i;
    e->client_seq = 3 * i;
    e->time_ms = 1700000000000ULL + i;
    CU_ASSERT_EQUAL(qkv_log_append(log, &e), i);
    free(e); /* NULL unless the append failed */
}

/* True when the log holds entry i of term as s_append made it. */
static bool s_entry_ok(const qkv_log_t *log, uint64_t i, uint64_t term) {
    char key[64], value[128];
    size_t kl = s_key(i, key, sizeof(key));
    size_t vl = s_value(i, term, value, sizeof(value));
    const qkv_entry_t *e = qkv_log_get(log, i);
    if (!e) {
        printf("\n  entry %" PRIu64 " is missing\n", i);
        return false;
    }
    bool ok = e->index == i && e->term == term && e->op == s_op(i) &&
              e->key_len == kl && e->value_len == vl &&
              memcmp(e->data, key, kl) == 0 &&
              memcmp(e->data + kl, value, vl) == 0 &&
              e->client_id == 1000 + i && e->client_seq == 3 * i &&
              e->time_ms == 1700000000000ULL + i;
    if (!ok)
        printf("\n  entry %" PRIu64 " differs (index %" PRIu64 ", term %" PRIu64
               ", op %u)\n",
               i, e->index, e->term, e->op);
    return ok;
}

static qkv_wal_options_t s_opts(const char *dir) {
    qkv_wal_options_t opt = {0};
    opt.dir = dir;
    opt.fsync = QKV_FSYNC_ALWAYS;
    opt.segment_bytes = 1u << 20; /* allocated whole: small and quick */
    return opt;
}

/* Opens the log of dir into log (which starts after after); fatal on
   failure. */
static qkv_wal_t *s_open(const qkv_wal_options_t *opt, uint64_t after,
                         qkv_log_t *log, qkv_wal_replay_t *replay) {
    char err[512] = "";
    qkv_wal_t *wal = qkv_wal_open(opt, after, log, replay, err, sizeof(err));
    if (!wal)
        printf("\n  qkv_wal_open: %s\n", err);
    CU_ASSERT_FATAL(wal != NULL);
    return wal;
}

/* s_open into a new empty log, made here (*log_p). */
static qkv_wal_t *s_open_new(const qkv_wal_options_t *opt, uint64_t after,
                             qkv_log_t **log_p, qkv_wal_replay_t *replay) {
    *log_p = qkv_log_new();
    CU_ASSERT_FATAL(*log_p != NULL);
    return s_open(opt, after, *log_p, replay);
}

/* Closes *wal_p and *log_p and opens the log again, as a restart does. */
static void s_reopen(const qkv_wal_options_t *opt, uint64_t after,
                     qkv_wal_t **wal_p, qkv_log_t **log_p,
                     qkv_wal_replay_t *replay) {
    qkv_wal_close(wal_p);
    qkv_log_destroy(log_p);
    *wal_p = s_open_new(opt, after, log_p, replay);
}

/* Polls qkv_wal_durable until it reaches target (up to 5 s). */
static bool s_wait_durable(qkv_wal_t *wal, const qkv_log_t *log,
                           uint64_t target) {
    uint64_t durable = 0;
    for (int i = 0; i < 1000; i++) {
        durable = qkv_wal_durable(wal, log, qkv_now_us());
        if (durable == target)
            return true;
        s_sleep_ms(5);
    }
    printf("\n  durable %" PRIu64 ", expected %" PRIu64 "\n", durable, target);
    return false;
}

/* Writes the log's new entries and waits until they are durable. */
static void s_write(qkv_wal_t *wal, const qkv_log_t *log, uint64_t cluster,
                    uint64_t term) {
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, cluster, term, qkv_now_us()), 0);
    KIT_ASSERT_STR(qkv_wal_error(wal), "");
    CU_ASSERT_EQUAL(qkv_wal_written(wal), qkv_log_last_index(log));
    CU_ASSERT(s_wait_durable(wal, log, qkv_log_last_index(log)));
}

/* Sequence numbers of the wal-*.log files of dir, ascending; returns how
   many (at most max are stored). */
static size_t s_segments(const char *dir, uint64_t *seqs, size_t max) {
    DIR *d = opendir(dir);
    CU_ASSERT_FATAL(d != NULL);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long seq;
        char tail[8];
        if (strlen(de->d_name) != 24 ||
            sscanf(de->d_name, "wal-%16llx%7s", &seq, tail) != 2 ||
            strcmp(tail, ".log") != 0)
            continue;
        if (n < max)
            seqs[n] = seq;
        n++;
    }
    closedir(d);
    size_t m = n < max ? n : max;
    for (size_t i = 1; i < m; i++)
        for (size_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
            uint64_t t = seqs[j];
            seqs[j] = seqs[j - 1];
            seqs[j - 1] = t;
        }
    return n;
}

static void s_seg_path(const char *dir, uint64_t seq, char *path, size_t size) {
    snprintf(path, size, "%s/wal-%016" PRIx64 ".log", dir, seq);
}

/* Path of the newest segment of dir. */
static void s_newest(const char *dir, char *path, size_t size) {
    uint64_t seqs[64];
    size_t n = s_segments(dir, seqs, 64);
    CU_ASSERT_FATAL(n > 0 && n <= 64);
    s_seg_path(dir, seqs[n - 1], path, size);
}

static off_t s_file_size(const char *path) {
    struct stat st;
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    return st.st_size;
}

static size_t s_slurp(const char *path, char **data);

/* Where the written data of a segment ends: segments are allocated whole
   when made, so the file is longer than what was written (zeros). */
static off_t s_data_end(const char *path) {
    char *data;
    size_t size = s_slurp(path, &data);
    while (size && data[size - 1] == 0)
        size--;
    free(data);
    return (off_t)size;
}

/* Writes bytes right after the segment's data (into its allocated room,
   or beyond the end of the file). */
static void s_append_bytes(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(pwrite(fd, data, len, s_data_end(path)) == (ssize_t)len);
    close(fd);
}

/* Reads a whole file into *data (malloc'd); returns its size. */
static size_t s_slurp(const char *path, char **data) {
    size_t size = (size_t)s_file_size(path);
    *data = malloc(size + 1);
    CU_ASSERT_FATAL(*data != NULL);
    int fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(read(fd, *data, size) == (ssize_t)size);
    close(fd);
    return size;
}

static void s_spit(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, data, size) == (ssize_t)size);
    close(fd);
}

/* Flips one byte of a file at offset. */
static void s_flip(const char *path, off_t offset) {
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    unsigned char c;
    CU_ASSERT_FATAL(pread(fd, &c, 1, offset) == 1);
    c ^= 0x5a;
    CU_ASSERT_FATAL(pwrite(fd, &c, 1, offset) == 1);
    close(fd);
}

/* Offset of entry i's key in the file at path (it is unique there). */
static off_t s_key_offset(const char *path, uint64_t i) {
    char key[64], *data;
    size_t kl = s_key(i, key, sizeof(key));
    size_t size = s_slurp(path, &data);
    const char *at = memmem(data, size, key, kl);
    CU_ASSERT_FATAL(at != NULL);
    off_t off = at - data;
    free(data);
    return off;
}

/*  =====================================================================
    The write-ahead log */

static void test_round_trip(void) {
    enum { N = 60 };
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    CU_ASSERT_EQUAL(replay.records, 0);
    CU_ASSERT_EQUAL(replay.term, 0);
    CU_ASSERT_EQUAL(replay.cluster_id, 0);
    CU_ASSERT_FALSE(replay.cut);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 0);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), 0);
    CU_ASSERT(qkv_wal_event_fd(wal) >= 0);
    /* half in one write, the rest one per write */
    for (uint64_t i = 1; i <= N / 2; i++)
        s_append(log, i, 3);
    s_write(wal, log, CLUSTER, 3);
    for (uint64_t i = N / 2 + 1; i <= N; i++) {
        s_append(log, i, 3);
        CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER, 3, qkv_now_us()), 0);
    }
    CU_ASSERT_EQUAL(qkv_wal_written(wal), N);
    CU_ASSERT(s_wait_durable(wal, log, N));
    /* nothing new: nothing to write */
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER, 3, qkv_now_us()), 0);
    qkv_wal_stats_t stats;
    qkv_wal_stats(wal, &stats);
    CU_ASSERT(stats.fsyncs >= 1);
    CU_ASSERT_EQUAL(stats.entries_synced, N);
    CU_ASSERT_EQUAL(stats.fsync_failures, 0);
    CU_ASSERT_EQUAL(stats.write_errors, 0);
    CU_ASSERT(stats.disk_bytes > N * 50);
    qkv_wal_close(&wal);
    CU_ASSERT(wal == NULL);
    qkv_wal_close(&wal); /* safe on NULL */
    qkv_log_destroy(&log);

    wal = s_open_new(&opt, 0, &log, &replay);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(replay.term, 3);
    CU_ASSERT_EQUAL(replay.records, N);
    CU_ASSERT_EQUAL(replay.segments, 1);
    CU_ASSERT_EQUAL(replay.bytes, stats.disk_bytes);
    CU_ASSERT_FALSE(replay.cut);
    CU_ASSERT_EQUAL(qkv_log_first_index(log), 1);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N);
    int wrong = 0;
    for (uint64_t i = 1; i <= N; i++)
        wrong += !s_entry_ok(log, i, 3);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), N);
    CU_ASSERT_EQUAL(qkv_wal_durable(wal, log, qkv_now_us()), N);
    /* writing goes on after what was replayed */
    s_append(log, N + 1, 4);
    s_write(wal, log, CLUSTER, 4);

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.term, 4);
    CU_ASSERT_EQUAL(replay.segments, 2);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N + 1);
    CU_ASSERT(s_entry_ok(log, N, 3));
    CU_ASSERT(s_entry_ok(log, N + 1, 4));
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_state_change(void) {
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    for (uint64_t i = 1; i <= 3; i++)
        s_append(log, i, 1);
    s_write(wal, log, CLUSTER, 1);
    /* a new term with an entry of it */
    s_append(log, 4, 2);
    s_write(wal, log, CLUSTER, 2);

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(replay.term, 2);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 4);
    CU_ASSERT(s_entry_ok(log, 3, 1));
    CU_ASSERT(s_entry_ok(log, 4, 2));
    /* a new term alone (a vote, no entry): a STATE record by itself */
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER, 5, qkv_now_us()), 0);
    CU_ASSERT(s_wait_durable(wal, log, 4));

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(replay.term, 5);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 4);
    /* another cluster id is replayed too */
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER + 1, 5, qkv_now_us()), 0);
    CU_ASSERT(s_wait_durable(wal, log, 4));

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER + 1);
    CU_ASSERT_EQUAL(replay.term, 5);
    CU_ASSERT_EQUAL(replay.vote.vote, 0);
    /* a vote in the same term (elections), durable at once */
    qkv_wal_vote_t vote = {3, 0, 4, 77};
    qkv_wal_set_vote(wal, &vote);
    char err[256];
    CU_ASSERT_EQUAL(
        qkv_wal_persist_state(wal, log, CLUSTER + 1, 5, err, sizeof(err)), 0);

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.term, 5);
    CU_ASSERT_EQUAL(replay.vote.vote, 3);
    CU_ASSERT_EQUAL(replay.vote.rejoin_term, 4);
    CU_ASSERT_EQUAL(replay.vote.rejoin_commit, 77);
    /* a later term clears it */
    vote = (qkv_wal_vote_t){0, 0, 0, 0};
    qkv_wal_set_vote(wal, &vote);
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER + 1, 6, qkv_now_us()), 0);
    CU_ASSERT(s_wait_durable(wal, log, 4));
    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.term, 6);
    CU_ASSERT_EQUAL(replay.vote.vote, 0);
    CU_ASSERT_EQUAL(replay.vote.rejoin_term, 0);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

/* Writes entries 1..n of term 1 into a fresh log of dir, in writes of
   per entries each, and closes it. */
static void s_fill(const char *dir, uint64_t n, uint64_t per) {
    qkv_wal_options_t opt = s_opts(dir);
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    CU_ASSERT_EQUAL_FATAL(qkv_log_last_index(log), 0);
    for (uint64_t i = 1; i <= n; i++) {
        s_append(log, i, 1);
        if (i % per == 0 || i == n)
            s_write(wal, log, CLUSTER, 1);
    }
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
}

/* Opens opt->dir and checks that it holds 1..n of term 1 and whether it cut. */
static void s_expect(const qkv_wal_options_t *opt, uint64_t n, bool cut) {
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(opt, 0, &log, &replay);
    CU_ASSERT_EQUAL(replay.cut, cut);
    CU_ASSERT_EQUAL(replay.term, 1);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), n);
    int wrong = 0;
    for (uint64_t i = 1; i <= n; i++)
        wrong += !s_entry_ok(log, i, 1);
    CU_ASSERT_EQUAL(wrong, 0);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
}

static void test_torn_tail(void) {
    enum { N = 10 };
    char dir[64], path[256];
    qkv_wal_options_t opt;

    /* the last record cut short by 3 bytes: it goes, the rest stays */
    s_tmpdir(dir);
    opt = s_opts(dir);
    s_fill(dir, N, 3);
    s_newest(dir, path, sizeof(path));
    off_t size = s_data_end(path);
    CU_ASSERT_FATAL(truncate(path, size - 3) == 0);
    s_expect(&opt, N - 1, true);
    CU_ASSERT(s_file_size(path) < size - 3); /* the file was cut */
    s_expect(&opt, N - 1, false);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);

    /* a few garbage bytes after the last record (a frame cut short) */
    s_tmpdir(dir);
    opt = s_opts(dir);
    s_fill(dir, N, 4);
    s_newest(dir, path, sizeof(path));
    size = s_data_end(path);
    s_append_bytes(path, "\x13\x37\xbe\xef\x01", 5);
    s_expect(&opt, N, true);
    CU_ASSERT_EQUAL(s_file_size(path), size); /* cut right after */
    s_expect(&opt, N, false);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);

    /* a tail of zeros (the room allocated, or a file that grew and whose
       data never came) is the end, not damage */
    s_tmpdir(dir);
    opt = s_opts(dir);
    s_fill(dir, N, N);
    s_newest(dir, path, sizeof(path));
    size = s_data_end(path);
    char zeros[300] = {0};
    CU_ASSERT_FATAL(truncate(path, size) == 0);
    s_append_bytes(path, zeros, sizeof(zeros));
    s_expect(&opt, N, false);
    CU_ASSERT_EQUAL(s_data_end(path), size);
    s_expect(&opt, N, false);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);

    /* the last record's checksum does not match: a torn write too */
    s_tmpdir(dir);
    opt = s_opts(dir);
    s_fill(dir, N, 2);
    s_newest(dir, path, sizeof(path));
    s_flip(path, s_key_offset(path, N));
    s_expect(&opt, N - 1, true);
    s_expect(&opt, N - 1, false);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

/* A bad length field early in the newest segment, pointing past the
   data into the allocated room: the records after it are whole, so it is
   damage (refused), not a torn write (cut), which would lose them. */
static void test_corrupt_length(void) {
    char dir[64], path[256], err[512];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    s_fill(dir, 10, 2);
    s_newest(dir, path, sizeof(path));
    /* entry 3's frame: crc, length, then 46 fixed bytes before its key */
    off_t frame = s_key_offset(path, 3) - 46 - 8;
    s_flip(path, frame + 5); /* the length's second byte: +/- 0x5a00 */
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_wal_replay_t replay;
    err[0] = '\0';
    qkv_wal_t *wal = qkv_wal_open(&opt, 0, log, &replay, err, sizeof(err));
    CU_ASSERT(wal == NULL);
    CU_ASSERT(strstr(err, "offset") != NULL);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_corrupt_record(void) {
    char dir[64], path[256], err[512];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    /* segment 1: entries 1..6; segment 2: entries 7..10 */
    s_fill(dir, 6, 2);
    {
        qkv_log_t *log;
        qkv_wal_replay_t replay;
        qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
        for (uint64_t i = 7; i <= 10; i++)
            s_append(log, i, 1);
        s_write(wal, log, CLUSTER, 1);
        qkv_wal_close(&wal);
        qkv_log_destroy(&log);
    }
    uint64_t seqs[8];
    CU_ASSERT_FATAL(s_segments(dir, seqs, 8) == 2);
    s_seg_path(dir, seqs[0], path, sizeof(path));
    s_flip(path, s_key_offset(path, 3));

    /* refused, naming the file and the offset */
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_wal_replay_t replay;
    err[0] = '\0';
    qkv_wal_t *wal = qkv_wal_open(&opt, 0, log, &replay, err, sizeof(err));
    CU_ASSERT(wal == NULL);
    qkv_wal_close(&wal);
    CU_ASSERT(strstr(err, path) != NULL);
    CU_ASSERT(strstr(err, "offset") != NULL);
    qkv_log_destroy(&log);
    /* the refusal changed nothing */
    CU_ASSERT_EQUAL(s_segments(dir, seqs, 8), 2);
    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    CU_ASSERT(qkv_wal_open(&opt, 0, log, &replay, err, sizeof(err)) == NULL);
    qkv_log_destroy(&log);

    /* repair: cut there, losing the corrupt record and all after it */
    qkv_wal_options_t repair = opt;
    repair.repair = true;
    s_expect(&repair, 2, true);
    s_expect(&opt, 2, false);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_replace_suffix(void) {
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    for (uint64_t i = 1; i <= 5; i++)
        s_append(log, i, 1);
    s_write(wal, log, CLUSTER, 1);
    /* a new leader's log wins from 3 on */
    qkv_log_truncate(log, 3);
    qkv_wal_truncated(wal, 3);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), 2);
    s_append(log, 3, 2);
    s_append(log, 4, 2);
    s_write(wal, log, CLUSTER, 2);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), 4);

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.term, 2);
    CU_ASSERT_EQUAL(replay.records, 7);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 4);
    CU_ASSERT(s_entry_ok(log, 1, 1));
    CU_ASSERT(s_entry_ok(log, 2, 1));
    CU_ASSERT(s_entry_ok(log, 3, 2));
    CU_ASSERT(s_entry_ok(log, 4, 2));
    CU_ASSERT(qkv_log_get(log, 5) == NULL);
    /* a replacement in a later segment wins too */
    qkv_log_truncate(log, 2);
    qkv_wal_truncated(wal, 2);
    s_append(log, 2, 3);
    s_write(wal, log, CLUSTER, 3);

    s_reopen(&opt, 0, &wal, &log, &replay);
    CU_ASSERT_EQUAL(replay.term, 3);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 2);
    CU_ASSERT(s_entry_ok(log, 1, 1));
    CU_ASSERT(s_entry_ok(log, 2, 3));
    CU_ASSERT(qkv_log_get(log, 3) == NULL);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_skip_snapshot(void) {
    enum { N = 12 };
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    s_fill(dir, N, 5);

    /* a snapshot at 3: the log starts at 4 */
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, 3, 1);
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open(&opt, 3, log, &replay);
    CU_ASSERT_EQUAL(replay.records, N); /* all read, 3 skipped */
    CU_ASSERT_EQUAL(replay.term, 1);
    CU_ASSERT_EQUAL(qkv_log_first_index(log), 4);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N);
    CU_ASSERT(qkv_log_get(log, 3) == NULL);
    CU_ASSERT_EQUAL(qkv_log_term_at(log, 3), 1);
    int wrong = 0;
    for (uint64_t i = 4; i <= N; i++)
        wrong += !s_entry_ok(log, i, 1);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), N);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    /* a snapshot at the last entry: nothing held */
    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, N, 1);
    wal = s_open(&opt, N, log, &replay);
    CU_ASSERT_EQUAL(qkv_log_first_index(log), N + 1);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    /* a snapshot beyond the log (installed from a leader): nothing held,
       and writing goes on after it */
    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, N + 5, 2);
    wal = s_open(&opt, N + 5, log, &replay);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N + 5);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), N + 5);
    s_append(log, N + 6, 2);
    s_write(wal, log, CLUSTER, 2);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, N + 5, 2);
    wal = s_open(&opt, N + 5, log, &replay);
    CU_ASSERT_EQUAL(replay.term, 2);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), N + 6);
    CU_ASSERT(s_entry_ok(log, N + 6, 2));
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_restart_at(void) {
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    opt.fsync = QKV_FSYNC_NEVER; /* durable means written */
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    for (uint64_t i = 1; i <= 4; i++)
        s_append(log, i, 1);
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER, 1, qkv_now_us()), 0);
    CU_ASSERT_EQUAL(qkv_wal_durable(wal, log, qkv_now_us()), 4);
    /* a snapshot at 100 from the leader: the log goes on after it */
    qkv_log_reset(log, 100, 3);
    qkv_wal_restart_at(wal, 100);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), 100);
    s_append(log, 101, 3);
    s_append(log, 102, 3);
    CU_ASSERT_EQUAL(qkv_wal_write(wal, log, CLUSTER, 3, qkv_now_us()), 0);
    CU_ASSERT_EQUAL(qkv_wal_written(wal), 102);
    CU_ASSERT_EQUAL(qkv_wal_durable(wal, log, qkv_now_us()), 102);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    uint64_t seqs[8];
    CU_ASSERT_EQUAL(s_segments(dir, seqs, 8), 2); /* a new segment */

    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, 100, 3);
    wal = s_open(&opt, 100, log, &replay);
    CU_ASSERT_EQUAL(replay.term, 3);
    CU_ASSERT_EQUAL(replay.records, 6);
    CU_ASSERT_EQUAL(qkv_log_first_index(log), 101);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 102);
    CU_ASSERT(s_entry_ok(log, 101, 3));
    CU_ASSERT(s_entry_ok(log, 102, 3));
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static bool s_exists(const char *dir, uint64_t seq) {
    char path[256];
    s_seg_path(dir, seq, path, sizeof(path));
    return access(path, F_OK) == 0;
}

static void test_compact(void) {
    enum { BATCHES = 6, PER = 3 };
    char dir[64];
    s_tmpdir(dir);
    qkv_wal_options_t opt = s_opts(dir);
    opt.segment_bytes = 200; /* every write after the first rolls */
    qkv_log_t *log;
    qkv_wal_replay_t replay;
    qkv_wal_t *wal = s_open_new(&opt, 0, &log, &replay);
    uint64_t i = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int k = 0; k < PER; k++) {
            i++;
            s_append(log, i, 1);
        }
        s_write(wal, log, CLUSTER, 1);
    }
    uint64_t seqs[16];
    /* segment s holds entries 3s-2 .. 3s */
    CU_ASSERT_EQUAL(s_segments(dir, seqs, 16), BATCHES);
    qkv_wal_stats_t before, after;
    qkv_wal_stats(wal, &before);
    qkv_wal_compact(wal, 10); /* segments 1..3 are at or below it */
    qkv_wal_stats(wal, &after);
    CU_ASSERT_EQUAL(s_segments(dir, seqs, 16), BATCHES - 3);
    CU_ASSERT(!s_exists(dir, 1) && !s_exists(dir, 2) && !s_exists(dir, 3));
    CU_ASSERT(s_exists(dir, 4) && s_exists(dir, 5) && s_exists(dir, 6));
    CU_ASSERT(after.disk_bytes < before.disk_bytes);
    qkv_wal_compact(wal, 11); /* segment 4 ends at 12: it stays */
    CU_ASSERT(s_exists(dir, 4));
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    /* the snapshot at 10 and what is left replay everything after it */
    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, 10, 1);
    wal = s_open(&opt, 10, log, &replay);
    CU_ASSERT_EQUAL(replay.segments, 3);
    CU_ASSERT_EQUAL(replay.records, 3 * PER);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), BATCHES * PER);
    int wrong = 0;
    for (uint64_t j = 11; j <= BATCHES * PER; j++)
        wrong += !s_entry_ok(log, j, 1);
    CU_ASSERT_EQUAL(wrong, 0);
    /* what replay learnt of the segments is enough to compact them:
       segments 4 and 5 go, 6 (entries 16..18) stays */
    qkv_wal_compact(wal, 17);
    CU_ASSERT(!s_exists(dir, 4) && !s_exists(dir, 5));
    CU_ASSERT(s_exists(dir, 6) && s_exists(dir, 7));
    /* the current segment never goes */
    qkv_wal_compact(wal, 1000);
    CU_ASSERT_EQUAL(s_segments(dir, seqs, 16), 1);
    CU_ASSERT(s_exists(dir, 7));
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    /* a snapshot at 18 and the one segment left (STATE only) */
    log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    qkv_log_reset(log, 18, 1);
    wal = s_open(&opt, 18, log, &replay);
    CU_ASSERT_EQUAL(replay.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(replay.term, 1);
    CU_ASSERT_EQUAL(replay.records, 0);
    CU_ASSERT_EQUAL(qkv_log_last_index(log), 18);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

/*  =====================================================================
    Snapshots */

typedef struct {
    uint64_t client, seq, hash, index, result;
} s_written_t;

/* Puts key-k = value-k-round for k in [0, keys) into store at indexes
   from *index on, tagged (client 7, seq from *seq on) in sessions; logs
   the writes in w. */
static size_t s_put_keys(qkv_store_t *store, qkv_sessions_t *sessions, int keys,
                         int round, uint64_t *index, uint64_t *seq,
                         s_written_t *w, size_t nw) {
    for (int k = 0; k < keys; k++) {
        char key[32], value[64];
        int kl = snprintf(key, sizeof(key), "key-%d", k);
        int vl = snprintf(value, sizeof(value), "value-%d-%d", k, round);
        qkv_entry_t *e =
            qkv_entry_new(QKV_OP_PUT, key, (size_t)kl, value, (size_t)vl);
        CU_ASSERT_FATAL(e != NULL);
        e->index = ++*index;
        e->client_id = 7;
        e->client_seq = ++*seq;
        e->time_ms = 1000 + e->index;
        uint64_t result = 0;
        CU_ASSERT_EQUAL_FATAL(qkv_store_apply(store, e, &result), 0);
        uint64_t hash = qkv_entry_hash(e);
        CU_ASSERT_EQUAL(qkv_sessions_record(sessions, 7, e->client_seq, hash,
                                            e->index, result, e->time_ms),
                        0);
        w[nw++] = (s_written_t){7, e->client_seq, hash, e->index, result};
        free(e);
    }
    return nw;
}

/* True when b holds the same keys (key-0 .. key-<keys - 1>), values,
   seqs and indexes as a, and b's applied index is applied. */
static bool s_same_store(qkv_store_t *a, qkv_store_t *b, int keys,
                         uint64_t applied) {
    bool same = qkv_store_count(a) == qkv_store_count(b) &&
                qkv_store_applied_index(b) == applied;
    qkv_buf_t va = {0}, vb = {0};
    for (int k = 0; k < keys && same; k++) {
        char key[32];
        int kl = snprintf(key, sizeof(key), "key-%d", k);
        uint64_t sa = 0, sb = 0, ia = 0, ib = 0;
        int ra = qkv_store_get(a, key, (size_t)kl, &va, &sa, &ia);
        int rb = qkv_store_get(b, key, (size_t)kl, &vb, &sb, &ib);
        same = ra == rb &&
               (ra != 1 || (va.size == vb.size && sa == sb && ia == ib &&
                            memcmp(va.data, vb.data, va.size) == 0));
    }
    qkv_buf_free(&va);
    qkv_buf_free(&vb);
    return same;
}

static void test_snap_image(void) {
    enum { KEYS = 40 };
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(store != NULL && sessions != NULL);
    s_written_t w[2 * KEYS];
    uint64_t index = 0, seq = 0;
    size_t nw = s_put_keys(store, sessions, KEYS, 1, &index, &seq, w, 0);
    nw = s_put_keys(store, sessions, KEYS / 4, 2, &index, &seq, w, nw);
    /* an untagged delete of one key */
    qkv_entry_t *e = qkv_entry_new(QKV_OP_DELETE, "key-30", 6, "", 0);
    CU_ASSERT_FATAL(e != NULL);
    e->index = ++index;
    uint64_t result;
    CU_ASSERT_EQUAL(qkv_store_apply(store, e, &result), 0);
    CU_ASSERT_EQUAL(result, 1);
    free(e);
    CU_ASSERT_EQUAL(qkv_store_count(store), KEYS - 1);
    CU_ASSERT_EQUAL(qkv_store_applied_index(store), index);

    qkv_snap_meta_t meta = {CLUSTER, index, 9, 0};
    qkv_buf_t image = {0};
    CU_ASSERT_EQUAL_FATAL(qkv_snap_encode(store, sessions, &meta, &image), 0);
    CU_ASSERT_EQUAL(meta.keys, KEYS - 1);
    char why[256] = "";
    qkv_snap_meta_t got;
    memset(&got, 0xff, sizeof(got));
    CU_ASSERT_EQUAL(
        qkv_snap_check(image.data, image.size, &got, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(got.cluster_id, CLUSTER);
    CU_ASSERT_EQUAL(got.index, index);
    CU_ASSERT_EQUAL(got.term, 9);
    CU_ASSERT_EQUAL(got.keys, KEYS - 1);

    /* into a fresh store and sessions (with something to replace) */
    qkv_store_t *store2 = qkv_store_new();
    qkv_sessions_t *sessions2 = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(store2 != NULL && sessions2 != NULL);
    uint64_t i2 = 0, s2 = 500;
    s_written_t junk[KEYS + 10];
    s_put_keys(store2, sessions2, KEYS + 10, 9, &i2, &s2, junk, 0);
    CU_ASSERT_EQUAL(qkv_snap_apply(image.data, image.size, store2, sessions2,
                                   why, sizeof(why)),
                    0);
    CU_ASSERT(s_same_store(store, store2, KEYS + 10, index));
    CU_ASSERT_EQUAL(qkv_store_count(store2), KEYS - 1);
    CU_ASSERT_EQUAL(qkv_store_applied_index(store2), index);
    qkv_buf_t value = {0};
    uint64_t vseq = 0, vindex = 0;
    CU_ASSERT_EQUAL(qkv_store_get(store2, "key-3", 5, &value, &vseq, &vindex),
                    1);
    CU_ASSERT_EQUAL(vseq, 2);
    CU_ASSERT_EQUAL(vindex, KEYS + 4);
    CU_ASSERT(value.size == 9 && memcmp(value.data, "value-3-2", 9) == 0);
    CU_ASSERT_EQUAL(qkv_store_get(store2, "key-30", 6, &value, &vseq, &vindex),
                    0);
    CU_ASSERT_EQUAL(qkv_store_get(store2, "key-45", 6, &value, &vseq, &vindex),
                    0);
    qkv_buf_free(&value);
    CU_ASSERT_EQUAL(qkv_sessions_count(sessions2),
                    qkv_sessions_count(sessions));
    CU_ASSERT_EQUAL(qkv_sessions_records(sessions2),
                    qkv_sessions_records(sessions));
    int wrong = 0;
    for (size_t k = 0; k < nw; k++) {
        const qkv_session_rec_t *rec = NULL;
        if (qkv_sessions_check(sessions2, w[k].client, w[k].seq, w[k].hash,
                               &rec) != QKV_SESSION_RETRY ||
            !rec || rec->index != w[k].index || rec->result != w[k].result)
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(qkv_sessions_check(sessions2, 7, 1, w[0].hash + 1, NULL),
                    QKV_SESSION_CONFLICT);
    CU_ASSERT_EQUAL(qkv_sessions_check(sessions2, 7, seq + 1, 1, NULL),
                    QKV_SESSION_NEW);
    /* the junk's client (7 too, seqs above 500) is gone with it */
    CU_ASSERT_EQUAL(qkv_sessions_check(sessions2, 7, 501, junk[0].hash, NULL),
                    QKV_SESSION_NEW);

    /* any flipped byte is refused */
    int accepted = 0;
    for (size_t off = 0; off < image.size; off += 1 + image.size / 97) {
        image.data[off] ^= 0x10;
        accepted +=
            qkv_snap_check(image.data, image.size, &got, why, sizeof(why)) == 0;
        image.data[off] ^= 0x10;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    image.data[image.size / 2] ^= 1;
    why[0] = '\0';
    CU_ASSERT_EQUAL(
        qkv_snap_check(image.data, image.size, &got, why, sizeof(why)), -1);
    CU_ASSERT(why[0] != '\0');
    CU_ASSERT_EQUAL(qkv_snap_apply(image.data, image.size, store2, sessions2,
                                   why, sizeof(why)),
                    -1);
    image.data[image.size / 2] ^= 1;
    /* short images are refused */
    size_t sizes[] = {
        0, 10, 48, image.size / 2, image.size - 4, image.size - 1};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
        CU_ASSERT_EQUAL(
            qkv_snap_check(image.data, sizes[k], &got, why, sizeof(why)), -1);
    /* a key count that does not add up, under a good checksum */
    qkv_buf_t bad = {0};
    CU_ASSERT_FATAL(qkv_buf_append(&bad, image.data, image.size) == 0);
    bad.data[40] = (char)(bad.data[40] + 1); /* keys, little-endian */
    uint32_t crc = qkv_crc32c(0, bad.data, bad.size - 4);
    for (int k = 0; k < 4; k++)
        bad.data[bad.size - 4 + k] = (char)(crc >> (8 * k));
    CU_ASSERT_EQUAL(qkv_snap_check(bad.data, bad.size, &got, why, sizeof(why)),
                    0);
    CU_ASSERT_EQUAL(got.keys, KEYS);
    CU_ASSERT_EQUAL(
        qkv_snap_apply(bad.data, bad.size, store2, sessions2, why, sizeof(why)),
        -1);
    qkv_buf_free(&bad);
    /* a good image still applies */
    CU_ASSERT_EQUAL(qkv_snap_apply(image.data, image.size, store2, sessions2,
                                   why, sizeof(why)),
                    0);
    CU_ASSERT(s_same_store(store, store2, KEYS, index));

    /* an empty state */
    qkv_store_t *empty = qkv_store_new();
    qkv_sessions_t *nosessions = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(empty != NULL && nosessions != NULL);
    qkv_snap_meta_t zero = {CLUSTER, 0, 0, 123};
    CU_ASSERT_EQUAL(qkv_snap_encode(empty, nosessions, &zero, &image), 0);
    CU_ASSERT_EQUAL(zero.keys, 0);
    CU_ASSERT_EQUAL(qkv_snap_apply(image.data, image.size, store2, sessions2,
                                   why, sizeof(why)),
                    0);
    CU_ASSERT_EQUAL(qkv_store_count(store2), 0);
    CU_ASSERT_EQUAL(qkv_store_applied_index(store2), 0);
    CU_ASSERT_EQUAL(qkv_sessions_count(sessions2), 0);
    /* an unknown client: seq 1 is new, a later one too old to tell */
    CU_ASSERT_EQUAL(
        qkv_sessions_check(sessions2, w[0].client, w[0].seq, w[0].hash, NULL),
        QKV_SESSION_NEW);
    CU_ASSERT_EQUAL(
        qkv_sessions_check(sessions2, w[1].client, w[1].seq, w[1].hash, NULL),
        QKV_SESSION_EXPIRED);

    qkv_buf_free(&image);
    qkv_store_destroy(&empty);
    qkv_sessions_destroy(&nosessions);
    qkv_store_destroy(&store2);
    qkv_sessions_destroy(&sessions2);
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
}

static int s_cmp_name(const void *a, const void *b) {
    return strcmp(a, b);
}

/* Names of the snap-* files of dir, sorted, joined by spaces. */
static void s_snap_files(const char *dir, char *out, size_t size) {
    char names[16][256];
    size_t n = 0;
    DIR *d = opendir(dir);
    CU_ASSERT_FATAL(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "snap-", 5) == 0 && n < 16)
            snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), s_cmp_name);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? " " : "",
                 names[i]);
}

/* Hands a copy of image to the saver and waits for its report. */
static void s_save(qkv_snap_saver_t *saver, const qkv_buf_t *image,
                   uint64_t index) {
    qkv_buf_t copy = {0};
    CU_ASSERT_FATAL(qkv_buf_append(&copy, image->data, image->size) == 0);
    CU_ASSERT_FATAL(qkv_snap_saver_save(saver, &copy, index));
    CU_ASSERT(copy.size == 0);
    struct pollfd p = {qkv_snap_saver_fd(saver), POLLIN, 0};
    CU_ASSERT(poll(&p, 1, 5000) == 1);
    for (int i = 0; i < 500 && qkv_snap_saver_busy(saver); i++)
        s_sleep_ms(10);
    CU_ASSERT_FALSE(qkv_snap_saver_busy(saver));
    uint64_t bytes = 0;
    char why[256] = "?";
    CU_ASSERT_EQUAL(qkv_snap_saver_done(saver, &bytes, why, sizeof(why)),
                    index);
    CU_ASSERT_EQUAL(bytes, image->size);
    KIT_ASSERT_STR(why, "");
    qkv_buf_free(&copy);
}

/* Loads the newest snapshot of dir into a fresh state and checks that it
   is the one at index, equal to want. */
static void s_load_expect(const char *dir, uint64_t index, qkv_store_t *want,
                          size_t image_size) {
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(store != NULL && sessions != NULL);
    qkv_snap_meta_t meta;
    uint64_t bytes = 1;
    char err[512] = "";
    int rc = qkv_snap_load_newest(dir, store, sessions, &meta, &bytes, err,
                                  sizeof(err));
    if (rc != 0)
        printf("\n  qkv_snap_load_newest: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    if (meta.index != index)
        printf("\n  loaded the snapshot at %" PRIu64 ", expected %" PRIu64 "\n",
               meta.index, index);
    CU_ASSERT_EQUAL(meta.index, index);
    CU_ASSERT_EQUAL(bytes, image_size);
    if (want) {
        CU_ASSERT_EQUAL(meta.cluster_id, CLUSTER);
        CU_ASSERT(s_same_store(want, store, 20, index));
    } else {
        CU_ASSERT_EQUAL(qkv_store_count(store), 0);
    }
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
}

/* Reading a snapshot for a follower: the bytes come back; a file that is
   gone (a newer snapshot replaced it) says so, rather than never. */
static void test_snap_load_for_follower(void) {
    char dir[64];
    s_tmpdir(dir);
    qkv_snap_saver_t *saver = qkv_snap_saver_new(dir, false);
    CU_ASSERT_FATAL(saver != NULL);
    qkv_buf_t image = {0};
    CU_ASSERT_FATAL(qkv_buf_append(&image, "not checked here", 16) == 0);
    s_save(saver, &image, 7);
    qkv_buf_t got = {0};
    CU_ASSERT_EQUAL(qkv_snap_saver_loaded(saver, &got), 0); /* none asked */
    qkv_snap_saver_load(saver, 7);
    int rc = 0;
    for (int i = 0; i < 500 && rc == 0; i++) {
        s_sleep_ms(10);
        rc = qkv_snap_saver_loaded(saver, &got);
    }
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT(got.size == 16 && memcmp(got.data, "not checked here", 16) == 0);
    qkv_snap_saver_load(saver, 8); /* no such file */
    rc = 0;
    for (int i = 0; i < 500 && rc == 0; i++) {
        s_sleep_ms(10);
        rc = qkv_snap_saver_loaded(saver, &got);
    }
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(qkv_snap_saver_loaded(saver, &got), 0); /* said once */
    qkv_buf_free(&got);
    qkv_buf_free(&image);
    qkv_snap_saver_destroy(&saver);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static void test_snap_files(void) {
    char dir[64], files[1024], path[256];
    s_tmpdir(dir);
    qkv_store_t *store = qkv_store_new(), *at10 = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(100, 1000000);
    qkv_sessions_t *other = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(store != NULL && at10 != NULL && sessions != NULL &&
                    other != NULL);
    s_written_t w[40];
    uint64_t index = 0, seq = 0;

    /* nothing yet */
    s_load_expect(dir, 0, NULL, 0);

    qkv_buf_t image10 = {0}, image20 = {0};
    s_put_keys(store, sessions, 10, 1, &index, &seq, w, 0);
    s_put_keys(at10, other, 10, 1, &(uint64_t){0}, &(uint64_t){0}, w, 0);
    qkv_snap_meta_t meta = {CLUSTER, 10, 1, 0};
    CU_ASSERT_FATAL(qkv_snap_encode(store, sessions, &meta, &image10) == 0);
    s_put_keys(store, sessions, 10, 2, &index, &seq, w, 0);
    meta = (qkv_snap_meta_t){CLUSTER, 20, 2, 0};
    CU_ASSERT_FATAL(qkv_snap_encode(store, sessions, &meta, &image20) == 0);

    qkv_snap_saver_t *saver = qkv_snap_saver_new(dir, true);
    CU_ASSERT_FATAL(saver != NULL);
    CU_ASSERT(qkv_snap_saver_fd(saver) >= 0);
    CU_ASSERT_FALSE(qkv_snap_saver_busy(saver));
    qkv_buf_t nothing = {0};
    CU_ASSERT_FALSE(qkv_snap_saver_save(saver, &nothing, 5)); /* empty */
    s_save(saver, &image10, 10);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files, "snap-000000000000000a.snap");
    s_save(saver, &image20, 20);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files, "snap-0000000000000014.snap");
    s_load_expect(dir, 20, store, image20.size);

    /* a save a crash interrupted: ignored and deleted */
    snprintf(path, sizeof(path), "%s/snap-0000000000000030.snap.tmp", dir);
    s_spit(path, image20.data, image20.size / 2);
    s_load_expect(dir, 20, store, image20.size);
    CU_ASSERT(access(path, F_OK) != 0 && errno == ENOENT);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files, "snap-0000000000000014.snap");

    /* an older snapshot saved again stays beside the newer one */
    s_save(saver, &image10, 10);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files,
                   "snap-000000000000000a.snap snap-0000000000000014.snap");
    /* a newest file whose name and content disagree is passed over */
    snprintf(path, sizeof(path), "%s/snap-000000000000001e.snap", dir);
    s_spit(path, image20.data, image20.size);
    s_load_expect(dir, 20, store, image20.size);
    CU_ASSERT_EQUAL(unlink(path), 0);
    /* a damaged newest one: the one before it is loaded */
    snprintf(path, sizeof(path), "%s/snap-0000000000000014.snap", dir);
    s_flip(path, (off_t)image20.size / 2);
    s_load_expect(dir, 10, at10, image10.size);
    /* so is a cut one */
    CU_ASSERT_EQUAL(truncate(path, (off_t)image20.size - 1), 0);
    s_load_expect(dir, 10, at10, image10.size);

    qkv_snap_remove_all(dir);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files, "");
    s_load_expect(dir, 0, NULL, 0);

    qkv_snap_saver_destroy(&saver);
    CU_ASSERT(saver == NULL);
    qkv_buf_free(&image10);
    qkv_buf_free(&image20);
    qkv_store_destroy(&store);
    qkv_store_destroy(&at10);
    qkv_sessions_destroy(&sessions);
    qkv_sessions_destroy(&other);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

/* More snapshot files than load_newest looks at (4), in an order readdir
   does not sort. */
static void test_snap_many_files(void) {
    enum { FILES = 6 };
    char dir[64], path[256], files[1024];
    s_tmpdir(dir);
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(100, 1000000);
    CU_ASSERT_FATAL(store != NULL && sessions != NULL);
    s_written_t w[10];
    uint64_t index = 0, seq = 0;
    s_put_keys(store, sessions, 5, 1, &index, &seq, w, 0);
    qkv_buf_t image[FILES + 1];
    memset(image, 0, sizeof(image));
    /* written out of order so readdir does not list them sorted */
    static const int order[FILES] = {3, 1, 6, 2, 4, 5};
    for (int k = 0; k < FILES; k++) {
        int f = order[k];
        qkv_snap_meta_t meta = {CLUSTER, 100 * (uint64_t)f, 1, 0};
        CU_ASSERT_FATAL(qkv_snap_encode(store, sessions, &meta, &image[f]) ==
                        0);
        snprintf(path, sizeof(path), "%s/snap-%016" PRIx64 ".snap", dir,
                 meta.index);
        s_spit(path, image[f].data, image[f].size);
    }
    s_load_expect(dir, 100 * FILES, store, image[FILES].size);
    /* the three newest damaged: the fourth newest */
    for (int f = FILES; f > FILES - 3; f--) {
        snprintf(path, sizeof(path), "%s/snap-%016" PRIx64 ".snap", dir,
                 100 * (uint64_t)f);
        s_flip(path, 20);
    }
    s_load_expect(dir, 100 * (FILES - 3), store, image[FILES - 3].size);
    /* a save deletes every older file */
    qkv_snap_saver_t *saver = qkv_snap_saver_new(dir, false);
    CU_ASSERT_FATAL(saver != NULL);
    qkv_snap_meta_t meta = {CLUSTER, 5000, 1, 0};
    qkv_buf_t last = {0};
    CU_ASSERT_FATAL(qkv_snap_encode(store, sessions, &meta, &last) == 0);
    s_save(saver, &last, 5000);
    s_snap_files(dir, files, sizeof(files));
    KIT_ASSERT_STR(files, "snap-0000000000001388.snap");
    qkv_snap_saver_destroy(&saver);
    qkv_buf_free(&last);
    for (int f = 0; f <= FILES; f++)
        qkv_buf_free(&image[f]);
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
    CU_ASSERT_EQUAL(kit_rmtree(dir), 0);
}

static int s_add_suites(void) {
    static const kit_test_t wal[] = {
        KIT_TEST(test_round_trip),     KIT_TEST(test_state_change),
        KIT_TEST(test_torn_tail),      KIT_TEST(test_corrupt_record),
        KIT_TEST(test_corrupt_length), KIT_TEST(test_replace_suffix),
        KIT_TEST(test_skip_snapshot),  KIT_TEST(test_restart_at),
        KIT_TEST(test_compact),        KIT_TESTS_END};
    static const kit_test_t snap[] = {
        KIT_TEST(test_snap_image), KIT_TEST(test_snap_files),
        KIT_TEST(test_snap_load_for_follower), KIT_TEST(test_snap_many_files),
        KIT_TESTS_END};
    return kit_add_suite("wal", NULL, NULL, wal) &&
                   kit_add_suite("snap", NULL, NULL, snap)
               ? 0
               : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
