/*  fuzz_wal.c - libFuzzer target: the write-ahead log's reader
    (node/include/qkv_wal.h, qkv_wal_open's replay) on hostile segment
    files (docs/DATA.md, "Log segments").

    The input:
      byte 0      bit 0: REPAIR_LOG; bit 1: make every checksum right
                  (the header's and each record's that the lengths
                  frame) so that mutations reach the records' content;
                  bit 2: write an entry after the second open and open a
                  third time; bits 4-7: the snapshot index replay starts
                  after
      the rest    up to four segment files wal-...1.log, wal-...2.log,
                  ..., separated by the line "@@qkv-seg@@"
    written into a scratch directory of this process under /tmp. Opening
    must give the log or an error naming why, never a crash. A log that
    opens must hold every index from the snapshot on, open again to the
    same entries and state (anything torn was cut the first time), and
    take one more entry that a third open finds. (Each open starts the
    log's writer thread: this target runs a few hundred inputs a
    second.)

    Seeds: corpus/fuzz_wal/ (logs the writer made, torn and damaged ones,
    from fuzz_seeds).
*/
#include "fuzz.h"
#include "qkv_hash.h"
#include "qkv_le.h"
#include "qkv_log.h"
#include "qkv_wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SEP "@@qkv-seg@@"
#define S_MAX_SEGMENTS 4
#define S_HEADER_BYTES 16
#define S_FRAME_BYTES 8

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet();
    fuzz_dir();
    return 0;
}

/* Sets the header's checksum and that of every record whose length
   fits in the segment. */
static void s_fix_checksums(uint8_t *seg, size_t size) {
    if (size < S_HEADER_BYTES || memcmp(seg, "qkv-wal\n", 8) != 0)
        return;
    qkv_put_le32(seg + 12, qkv_crc32c(0, seg, 12));
    size_t off = S_HEADER_BYTES;
    while (size - off >= S_FRAME_BYTES) {
        uint32_t len = qkv_get_le32(seg + off + 4);
        if (len == 0 || len > size - off - S_FRAME_BYTES)
            break;
        qkv_put_le32(seg + off, qkv_crc32c(0, seg + off + 4, 4 + (size_t)len));
        off += S_FRAME_BYTES + len;
    }
}

/* A new log that starts after index after. */
static qkv_log_t *s_log(uint64_t after) {
    qkv_log_t *log = qkv_log_new();
    FUZZ_CHECK(log != NULL);
    if (after)
        qkv_log_reset(log, after, 1);
    return log;
}

static bool s_same_entry(const qkv_entry_t *a, const qkv_entry_t *b) {
    return a && b && a->index == b->index && a->term == b->term &&
           a->client_id == b->client_id && a->client_seq == b->client_seq &&
           a->time_ms == b->time_ms && a->op == b->op &&
           a->key_len == b->key_len && a->value_len == b->value_len &&
           fuzz_same(a->data, b->data, (size_t)a->key_len + a->value_len);
}

/* The two logs hold the same entries. */
static void s_check_same(const qkv_log_t *a, const qkv_log_t *b) {
    FUZZ_CHECK(qkv_log_first_index(a) == qkv_log_first_index(b) &&
               qkv_log_last_index(a) == qkv_log_last_index(b));
    for (uint64_t i = qkv_log_first_index(a); i <= qkv_log_last_index(a); i++)
        FUZZ_CHECK(s_same_entry(qkv_log_get(a, i), qkv_log_get(b, i)));
}

static void s_check_state(const qkv_wal_replay_t *a,
                          const qkv_wal_replay_t *b) {
    FUZZ_CHECK(a->cluster_id == b->cluster_id && a->term == b->term &&
               a->vote.vote == b->vote.vote &&
               a->vote.rejoin_term == b->vote.rejoin_term &&
               a->vote.rejoin_commit == b->vote.rejoin_commit);
}

/* Opens the scratch directory's log into log; NULL with err set when it
   refuses. */
static qkv_wal_t *s_open(bool repair, uint64_t after, qkv_log_t *log,
                         qkv_wal_replay_t *replay, char *err, size_t es) {
    qkv_wal_options_t opt = {0};
    opt.dir = fuzz_dir();
    opt.fsync = QKV_FSYNC_NEVER; /* no fsync: the fuzzer's speed */
    opt.repair = repair;
    opt.segment_bytes = 4096;
    err[0] = '\0';
    return qkv_wal_open(&opt, after, log, replay, err, es);
}

/* What a log that opened promises. */
static void s_check_log(const qkv_log_t *log, uint64_t after,
                        const qkv_wal_replay_t *replay) {
    uint64_t first = qkv_log_first_index(log), last = qkv_log_last_index(log);
    FUZZ_CHECK(first == after + 1 && last >= after);
    FUZZ_CHECK(last - after <= replay->records);
    for (uint64_t i = first; i <= last; i++) {
        const qkv_entry_t *e = qkv_log_get(log, i);
        FUZZ_CHECK(e && e->index == i);
        FUZZ_CHECK(e->op >= QKV_OP_PUT && e->op <= QKV_OP_MAX);
    }
}

static void s_run(uint8_t flags, uint8_t *data, size_t size) {
    bool repair = flags & 1;
    uint64_t after = flags >> 4;

    /* the segment files */
    size_t segments = 0;
    uint8_t *at = data, *end = data + size;
    while (segments < S_MAX_SEGMENTS) {
        uint8_t *sep = NULL;
        if (segments + 1 < S_MAX_SEGMENTS)
            sep = memmem(at, (size_t)(end - at), S_SEP, strlen(S_SEP));
        size_t len = sep ? (size_t)(sep - at) : (size_t)(end - at);
        if (flags & 2)
            s_fix_checksums(at, len);
        char name[64];
        snprintf(name, sizeof(name), "wal-%016zx.log", ++segments);
        fuzz_write_file(name, at, len);
        if (!sep)
            break;
        at = sep + strlen(S_SEP);
    }

    /* the first open, with the input's options */
    char err[1024];
    qkv_wal_replay_t replay;
    qkv_log_t *log = s_log(after);
    qkv_wal_t *wal = s_open(repair, after, log, &replay, err, sizeof(err));
    if (!wal) {
        FUZZ_CHECK(err[0] != '\0');
        qkv_log_destroy(&log);
        return;
    }
    FUZZ_CHECK(replay.segments == segments);
    s_check_log(log, after, &replay);
    qkv_wal_close(&wal);

    /* again, without repair: what was torn is gone, nothing is refused */
    qkv_wal_replay_t again;
    qkv_log_t *log2 = s_log(after);
    wal = s_open(false, after, log2, &again, err, sizeof(err));
    if (!wal)
        dprintf(2, "fuzz_wal: the second open refused: %s\n", err);
    FUZZ_CHECK(wal != NULL);
    FUZZ_CHECK(!again.cut);
    s_check_state(&replay, &again);
    s_check_same(log, log2);
    if (!(flags & 4)) {
        qkv_wal_close(&wal);
        qkv_log_destroy(&log);
        qkv_log_destroy(&log2);
        return;
    }

    /* one more entry, written and found */
    qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "k", 1, "v", 1);
    FUZZ_CHECK(e != NULL);
    e->term = replay.term;
    uint64_t index = qkv_log_append(log2, &e);
    FUZZ_CHECK(index == qkv_log_last_index(log) + 1);
    FUZZ_CHECK(qkv_wal_write(wal, log2, replay.cluster_id, replay.term, 0) ==
               0);
    qkv_wal_close(&wal);
    qkv_log_t *log3 = s_log(after);
    wal = s_open(false, after, log3, &again, err, sizeof(err));
    if (!wal)
        dprintf(2, "fuzz_wal: the third open refused: %s\n", err);
    FUZZ_CHECK(wal != NULL);
    s_check_state(&replay, &again);
    s_check_same(log2, log3);
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);
    qkv_log_destroy(&log2);
    qkv_log_destroy(&log3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    /* a copy: the checksums are set in place */
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fuzz_dir_clear();
    s_run(copy[0], copy + 1, size - 1);
    fuzz_dir_clear();
    free(copy);
    return 0;
}
