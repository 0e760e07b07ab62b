/*  fuzz_seeds.c - writes the seed corpora of the libFuzzer targets
    (corpus/<target>/) with the project's own encoders and writers, so
    that every seed is a valid input of its decoder and the fuzzers start
    deep: frames from qkv_encoder_* and qkv_cenc_*, log segments from
    qkv_wal_write, snapshot images from qkv_snap_encode, and REST and
    configuration text as the README shows them.

    Usage: fuzz_seeds DIR   (writes DIR/fuzz_msg/..., DIR/fuzz_wal/...;
    tests/fuzz/README.md says when to run it). Deterministic: the same
    build writes the same bytes.
*/
#include "qkv_cmsg.h"
#include "qkv_hash.h"
#include "qkv_le.h"
#include "qkv_log.h"
#include "qkv_msg.h"
#include "qkv_sessions.h"
#include "qkv_snap.h"
#include "qkv_store.h"
#include "qkv_wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CLUSTER 0x5eed1234abcdULL
#define S_SEP "@@qkv-seg@@"

static const char *s_out; /* the corpus directory */

static void s_die(const char *what) {
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Writes DIR/target/name: flag byte (when flag >= 0), then data. */
static void s_seed(const char *target, const char *name, int flag,
                   const void *data, size_t size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", s_out, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        s_die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", s_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        s_die(path);
    unsigned char b = (unsigned char)flag;
    if ((flag >= 0 && fwrite(&b, 1, 1, f) != 1) ||
        (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        s_die(path);
}

static void s_seed_text(const char *target, const char *name, int flag,
                        const char *text) {
    s_seed(target, name, flag, text, strlen(text));
}

static void s_seed_enc(const char *target, const char *name, int flag,
                       const qkv_encoder_t *enc) {
    size_t size = 0;
    const void *data = qkv_encoder_data(enc, &size);
    if (!data)
        s_die("encoder out of memory");
    s_seed(target, name, flag, data, size);
}

/*  =====================================================================
    Replication frames */

static void s_msg(qkv_encoder_t *enc) {
    static const char *leader = "tcp://127.0.0.1:7000";
    qkv_append_head_t head = {.cluster_id = S_CLUSTER,
                              .term = 3,
                              .leader = leader,
                              .leader_len = strlen(leader),
                              .sent_us = 1700000000000000LL,
                              .cluster_hash = 0x1234567};
    qkv_encoder_append_begin(enc, &head, 0);
    s_seed_enc("fuzz_msg", "append-heartbeat", -1, enc);

    head.prev_index = 7;
    head.prev_term = 2;
    head.commit_index = 6;
    qkv_encoder_append_begin(enc, &head, 4);
    struct {
        qkv_op_t op;
        const char *key, *value;
        uint64_t client_id, client_seq;
    } es[4] = {{QKV_OP_PUT, "user:1", "ada", 9, 1},
               {QKV_OP_DELETE, "user:2", "", 9, 2},
               {QKV_OP_NOOP, "", "", 0, 0},
               {QKV_OP_RESET, "", "", 0, 0}};
    for (int i = 0; i < 4; i++) {
        qkv_entry_t *e = qkv_entry_new(es[i].op, es[i].key, strlen(es[i].key),
                                       es[i].value, strlen(es[i].value));
        if (!e)
            s_die("out of memory");
        e->term = 3;
        e->client_id = es[i].client_id;
        e->client_seq = es[i].client_seq;
        e->time_ms = 1700000000000ULL + (uint64_t)i;
        qkv_encoder_add_entry(enc, e);
        free(e);
    }
    s_seed_enc("fuzz_msg", "append-entries", -1, enc);

    qkv_ack_t ack = {.cluster_id = S_CLUSTER,
                     .term = 3,
                     .ok = true,
                     .index = 11,
                     .echo_us = 1700000000000000LL};
    qkv_encoder_ack(enc, &ack);
    s_seed_enc("fuzz_msg", "ack-ok", -1, enc);
    ack = (qkv_ack_t){.cluster_id = S_CLUSTER,
                      .term = 3,
                      .index = 11,
                      .hint_index = 5,
                      .hint_term = 2};
    qkv_encoder_ack(enc, &ack);
    s_seed_enc("fuzz_msg", "ack-refused", -1, enc);

    qkv_vote_t vote = {.type = QKV_MSG_VOTE,
                       .cluster_id = S_CLUSTER,
                       .term = 4,
                       .pre = true,
                       .last_index = 11,
                       .last_term = 3,
                       .cluster_hash = 0x1234567};
    qkv_encoder_vote(enc, &vote);
    s_seed_enc("fuzz_msg", "vote-pre", -1, enc);
    vote.pre = false;
    vote.transfer = true;
    qkv_encoder_vote(enc, &vote);
    s_seed_enc("fuzz_msg", "vote-transfer", -1, enc);
    vote = (qkv_vote_t){.type = QKV_MSG_VOTE_ACK,
                        .cluster_id = S_CLUSTER,
                        .term = 4,
                        .granted = true,
                        .cluster_hash = 0x1234567};
    qkv_encoder_vote(enc, &vote);
    s_seed_enc("fuzz_msg", "vote-ack", -1, enc);

    qkv_encoder_timeout_now(enc, S_CLUSTER, 4, 0x1234567);
    s_seed_enc("fuzz_msg", "timeout-now", -1, enc);

    static const char chunk[] = "qkv-snap\1\0\0\0\0\0\0\0chunk of an image";
    qkv_snapshot_chunk_t c = {.cluster_id = S_CLUSTER,
                              .term = 4,
                              .snap_index = 100,
                              .snap_term = 3,
                              .total = 200,
                              .chunk = chunk,
                              .chunk_len = sizeof(chunk) - 1};
    qkv_encoder_snapshot(enc, &c);
    s_seed_enc("fuzz_msg", "snapshot-chunk", -1, enc);
}

/*  =====================================================================
    Client frames (first byte: 0 requests, 1 results) */

static void s_cmsg(qkv_encoder_t *enc) {
    qkv_creq_t reqs[] = {{.id = 1,
                          .op = QKV_COP_PUT,
                          .key = "user:1",
                          .key_len = 6,
                          .value = "ada",
                          .value_len = 3},
                         {.id = 2,
                          .op = QKV_COP_PUT,
                          .key = "k",
                          .key_len = 1,
                          .value = "v",
                          .value_len = 1,
                          .client_id = 42,
                          .client_seq = 7},
                         {.id = 3,
                          .op = QKV_COP_GET,
                          .key = "user:1",
                          .key_len = 6,
                          .min_index = 5,
                          .wait_ms = 1000},
                         {.id = 4,
                          .op = QKV_COP_DELETE,
                          .key = "user:1",
                          .key_len = 6,
                          .client_id = 42,
                          .client_seq = 8},
                         {.id = 5, .op = QKV_COP_RESET},
                         {.id = 6,
                          .op = QKV_COP_DUMP,
                          .cursor = 12,
                          .limit = 100,
                          .min_index = 3,
                          .wait_ms = 10},
                         {.id = 7, .op = QKV_COP_HEALTH}};
    size_t n = sizeof(reqs) / sizeof(reqs[0]);
    qkv_cenc_begin(enc, n);
    for (size_t i = 0; i < n; i++)
        qkv_cenc_request(enc, &reqs[i]);
    s_seed_enc("fuzz_cmsg", "requests-every-op", 0, enc);
    qkv_cenc_begin(enc, 1);
    qkv_cenc_request(enc, &reqs[0]);
    s_seed_enc("fuzz_cmsg", "request-put", 0, enc);

    qkv_citem_t items[2] = {{.key = "a",
                             .key_len = 1,
                             .value = "1",
                             .value_len = 1,
                             .seq = 1,
                             .index = 4},
                            {.key = "b",
                             .key_len = 1,
                             .value = "22",
                             .value_len = 2,
                             .seq = 3,
                             .index = 9}};
    qkv_cfollower_t fol[2] = {{.id = "node1",
                               .id_len = 5,
                               .endpoint = "tcp://127.0.0.1:9001",
                               .endpoint_len = 20,
                               .connected = true,
                               .acked_index = 10},
                              {.id = "node2",
                               .id_len = 5,
                               .endpoint = "tcp://127.0.0.1:9002",
                               .endpoint_len = 20,
                               .acked_index = 4,
                               .lag = 6}};
    qkv_chealth_t health = {.role = "leader",
                            .role_len = 6,
                            .node_id = "node0",
                            .node_id_len = 5,
                            .replication_id = "5eed",
                            .replication_id_len = 4,
                            .error = "",
                            .last_index = 10,
                            .commit_index = 10,
                            .applied_index = 10,
                            .followers = fol,
                            .follower_count = 2,
                            .max_key_bytes = 4096,
                            .max_value_bytes = 1 << 20,
                            .max_frame_bytes = 1 << 26};
    qkv_cres_t res[] = {{.id = 1,
                         .status = QKV_CS_OK,
                         .has_index = true,
                         .index = 12,
                         .has_seq = true,
                         .seq = 1},
                        {.id = 3,
                         .status = QKV_CS_OK,
                         .key = "user:1",
                         .key_len = 6,
                         .value = "ada",
                         .value_len = 3,
                         .has_index = true,
                         .index = 12,
                         .has_seq = true,
                         .seq = 1},
                        {.id = 4,
                         .status = QKV_CS_OK,
                         .has_index = true,
                         .index = 13,
                         .has_deleted = true,
                         .deleted = true},
                        {.id = 5,
                         .status = QKV_CS_NOT_LEADER,
                         .message = "not the leader",
                         .message_len = 14,
                         .leader = "tcp://127.0.0.1:7001",
                         .leader_len = 20},
                        {.id = 6,
                         .status = QKV_CS_OK,
                         .items = items,
                         .item_count = 2,
                         .has_next = true,
                         .next = 77,
                         .applied_index = 13},
                        {.id = 7, .status = QKV_CS_OK, .health = &health},
                        {.id = 0,
                         .status = QKV_CS_BAD_REQUEST,
                         .message = "empty array",
                         .message_len = 11}};
    n = sizeof(res) / sizeof(res[0]);
    qkv_cenc_begin(enc, n);
    for (size_t i = 0; i < n; i++)
        qkv_cenc_result(enc, &res[i]);
    s_seed_enc("fuzz_cmsg", "results-every-kind", 1, enc);
    qkv_cenc_begin_open(enc);
    qkv_cenc_result(enc, &res[0]);
    qkv_cenc_result(enc, &res[3]);
    qkv_cenc_end_open(enc, 2);
    s_seed_enc("fuzz_cmsg", "results-open", 1, enc);
}

/*  =====================================================================
    REST bodies and queries (first byte: parser and limits, see
    fuzz_rest.c) */

static void s_rest(void) {
    s_seed_text("fuzz_rest", "put", 0,
                "{\"key\":\"user:1\",\"value\":\"ada\"}");
    s_seed_text("fuzz_rest", "put-tagged", 0,
                "{\"key\":\"a\\u0000b\",\"value\":\"\\u00e9\\ud83d\\ude00\","
                "\"client_id\":9007199254740991,\"client_seq\":1}");
    s_seed_text("fuzz_rest", "put-small-limits", 8,
                "{\"key\":\"0123456789abcdef\",\"value\":\"v\"}");
    s_seed_text("fuzz_rest", "delete", 1, "{\"key\":\"user:1\"}");
    s_seed_text("fuzz_rest", "reset-empty", 2, "");
    s_seed_text("fuzz_rest", "reset-tagged", 2,
                "{\"client_id\":1,\"client_seq\":2,\"other\":[1,{}]}");
    s_seed_text("fuzz_rest", "transfer", 3, "{\"to\":\"node3\"}");
    s_seed_text("fuzz_rest", "query-get", 4,
                "key=user%3A1&min_index=2&wait_ms=1000");
    s_seed_text("fuzz_rest", "query-get-plus", 4, "x=1&key=a+b%00c&y");
    s_seed_text("fuzz_rest", "query-dump", 5,
                "min_index=18446744073709551615&wait_ms=60000&key=ignored");
    s_seed_text("fuzz_rest", "tokens-file", 6,
                "# who may do what\n"
                "read  0123456789abcdef0123\n"
                "\twrite\tABCDEFGHIJKLMNOP-_.~!$\r\n"
                "\n");
    /* the tokens fuzz_rest.c gives its Authorization mode */
    s_seed_text("fuzz_rest", "authorize-read", 7 | 1 << 3,
                "Bearer read-token-0123456789");
    s_seed_text("fuzz_rest", "authorize-write", 7 | 2 << 3,
                " bearer\twrite-token-0123456789abcdef  ");
    s_seed_text("fuzz_rest", "authorize-read-on-write", 7 | 2 << 3,
                "Bearer read-token-0123456789");
}

/*  =====================================================================
    Configuration (text: NAME=VALUE, -flag, @word lines) */

static void s_config(void) {
    s_seed_text("fuzz_config", "leader-static", -1,
                "ROLE=leader\nPORT=8000\nCLIENT_PORT=7000\n"
                "FOLLOWERS=tcp://127.0.0.1:9001,tcp://127.0.0.1:9002\n"
                "WRITE_QUORUM=2\nNODE_ID=node0\nDATA_DIR=none\n");
    s_seed_text("fuzz_config", "follower-static", -1,
                "ROLE=follower\nPORT=8001\nREPL_PORT=9001\n"
                "LEADER_URL=http://127.0.0.1:8000/\n"
                "LEADER_ENDPOINT=tcp://127.0.0.1:7000\n"
                "MIN_DELAY=0.001\nMAX_DELAY_MS=200\nFSYNC=everysec\n");
    s_seed_text(
        "fuzz_config", "peers", -1,
        "PEERS=n0=tcp://10.0.0.1:9000|tcp://10.0.0.1:7000|"
        "http://10.0.0.1:8000,n1=tcp://10.0.0.2:9000|tcp://10.0.0.2:7000|"
        "http://10.0.0.2:8000,n2=tcp://10.0.0.3:9000|tcp://10.0.0.3:7000|"
        "http://10.0.0.3:8000\nNODE_ID=n1\nWRITE_QUORUM=1\n"
        "ELECTION_TIMEOUT_MS=1000\n");
    s_seed_text("fuzz_config", "flags", -1,
                "PORT=1\n--port=8005\n--node-id\n@node5\n--bind=0.0.0.0\n"
                "--max-key-bytes=1024\n--dedup-window=10\n"
                "--session-ttl-s=60\n--repair-log=yes\n--syncing-reads=refuse\n"
                "--snapshot-entries=1000\n--wal-segment-bytes=65536\n");
    s_seed_text("fuzz_config", "help", -1, "-h\n");
    s_seed_text("fuzz_config", "every-setting", -1,
                "ROLE=leader\nNODE_ID=a\nPORT=8000\nBIND=127.0.0.1\n"
                "REPL_PORT=9000\nFOLLOWERS=tcp://h:1\nWRITE_QUORUM=1\n"
                "MIN_DELAY_MS=1\nMAX_DELAY_MS=2\nREPLICATION_TIMEOUT_MS=50\n"
                "HEARTBEAT_MS=10\nHTTP_THREADS=4\nMAX_KEY_BYTES=100\n"
                "MAX_VALUE_BYTES=1000\nCLIENT_PORT=7000\n"
                "CLIENT_ADVERTISE=tcp://127.0.0.1:7000\nDEDUP_WINDOW=5\n"
                "SESSION_TTL_S=10\nDATA_DIR=/tmp/x\nFSYNC=never\n"
                "SNAPSHOT_ENTRIES=100\nSNAPSHOT_LOG_BYTES=1048576\n"
                "WAL_SEGMENT_BYTES=65536\nSYNCING_READS=serve\nREPAIR_LOG=0\n"
                "DROP_FOREIGN_DATA=1\nELECTION_TIMEOUT_MS=500\n");
    s_seed_text("fuzz_config", "security", -1,
                "PEERS=a=tcp://h:1|tcp://h:2|http://h:3|key="
                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\nNODE_ID=a\n"
                "CURVE=on\nCURVE_KEY_DIR=/k\nCLIENT_KEYS=/c\n"
                "HTTP_TOKENS_FILE=/t\nTLS_CERT_FILE=/c.pem\n"
                "TLS_KEY_FILE=/k.pem\nMAX_MEMORY=64M\nMAX_BODY_BYTES=4096\n"
                "MAX_PENDING_WRITES=5\nREQUEST_TIMEOUT_MS=500\n"
                "COMMIT_NOTIFY_MS=0\nCPU_LIST=0,2-3\n");
    s_seed_text(
        "fuzz_config", "client_keys", -1,
        "# clients\nwrite rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 app\n"
        "read Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\n");
}

/*  =====================================================================
    Log segments (first byte: flags, see fuzz_wal.c) */

/* Appends entry index of term to log. */
static void s_append(qkv_log_t *log, uint64_t index, uint64_t term,
                     qkv_op_t op) {
    char key[32], value[32];
    int kl = op == QKV_OP_PUT || op == QKV_OP_DELETE
                 ? snprintf(key, sizeof(key), "key-%d", (int)(index % 3))
                 : 0;
    int vl = op == QKV_OP_PUT ? snprintf(value, sizeof(value), "v%d.%d",
                                         (int)index, (int)term)
                              : 0;
    qkv_entry_t *e = qkv_entry_new(op, key, (size_t)kl, value, (size_t)vl);
    if (!e)
        s_die("out of memory");
    e->term = term;
    e->client_id = index % 2 ? 7 : 0;
    e->client_seq = index % 2 ? index : 0;
    e->time_ms = 1700000000000ULL + index;
    if (qkv_log_append(log, &e) != index)
        s_die("log append");
}

/* Reads a file into *buf (malloc'd); returns its size. */
static size_t s_read(const char *path, char **buf) {
    FILE *f = fopen(path, "rb");
    if (!f)
        s_die(path);
    size_t cap = 1 << 16, n = 0;
    *buf = malloc(cap);
    if (!*buf)
        s_die("out of memory");
    size_t got;
    while ((got = fread(*buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap && !(*buf = realloc(*buf, cap *= 2)))
            s_die("out of memory");
    }
    fclose(f);
    return n;
}

/* The segments the writer made in dir, joined by the separator, into
   out (malloc'd); returns the size. Deletes the files. */
static size_t s_join(const char *dir, size_t count, char **out) {
    size_t size = 0;
    *out = NULL;
    for (size_t i = 1; i <= count; i++) {
        char path[512], *seg;
        snprintf(path, sizeof(path), "%s/wal-%016zx.log", dir, i);
        size_t n = s_read(path, &seg);
        unlink(path);
        *out = realloc(*out, size + strlen(S_SEP) + n);
        if (!*out)
            s_die("out of memory");
        if (i > 1) {
            memcpy(*out + size, S_SEP, strlen(S_SEP));
            size += strlen(S_SEP);
        }
        memcpy(*out + size, seg, n);
        size += n;
        free(seg);
    }
    return size;
}

static void s_wal(void) {
    char dir[] = "/tmp/qkv-fuzz-seeds-XXXXXX";
    if (!mkdtemp(dir))
        s_die("mkdtemp");
    qkv_wal_options_t opt = {0};
    opt.dir = dir;
    opt.fsync = QKV_FSYNC_NEVER;
    opt.segment_bytes = 1; /* every write starts a segment */
    qkv_log_t *log = qkv_log_new();
    qkv_wal_replay_t replay;
    char err[512];
    qkv_wal_t *wal = qkv_wal_open(&opt, 0, log, &replay, err, sizeof(err));
    if (!log || !wal) {
        fprintf(stderr, "fuzz_seeds: %s\n", err);
        exit(1);
    }
    /* segment 1: header and STATE; 2: term 1, entries 1-5; 3: a vote
       and term 2 replacing 4-5 with 4-6 */
    for (uint64_t i = 1; i <= 5; i++)
        s_append(log, i, 1,
                 i == 1   ? QKV_OP_NOOP
                 : i == 3 ? QKV_OP_DELETE
                          : QKV_OP_PUT);
    if (qkv_wal_write(wal, log, S_CLUSTER, 1, 0) != 0)
        s_die("wal write");
    qkv_log_truncate(log, 4);
    qkv_wal_truncated(wal, 4);
    qkv_wal_vote_t vote = {.vote = 2};
    qkv_wal_set_vote(wal, &vote);
    s_append(log, 4, 2, QKV_OP_NOOP);
    s_append(log, 5, 2, QKV_OP_RESET);
    s_append(log, 6, 2, QKV_OP_PUT);
    if (qkv_wal_write(wal, log, S_CLUSTER, 2, 0) != 0)
        s_die("wal write");
    qkv_wal_close(&wal);
    qkv_log_destroy(&log);

    char *all;
    size_t size = s_join(dir, 3, &all);
    s_seed("fuzz_wal", "three-segments", 0x04, all, size);
    s_seed("fuzz_wal", "three-segments-fix-crc", 0x06, all, size);
    s_seed("fuzz_wal", "three-segments-after-3", 0x36, all, size);
    /* the last record torn: cut short by 5 bytes */
    s_seed("fuzz_wal", "torn-tail", 0x04, all, size - 5);
    /* a record in the middle segment damaged: refused, or cut by repair */
    char *sep = memmem(all, size, S_SEP, strlen(S_SEP));
    uint8_t *rec = (uint8_t *)sep + strlen(S_SEP) + 16;
    for (int k = 0; k < 4; k++) /* past two STATEs and two entries */
        rec += 8 + qkv_get_le32(rec + 4);
    rec[8 + 20] ^= 0x40; /* the third entry's client_id */
    s_seed("fuzz_wal", "corrupt-middle-repair", 0x05, all, size);
    free(all);

    /* one segment: a 17-byte STATE (before elections), an entry, then
       zeros as the allocated room after the last record */
    uint8_t seg[16 + 8 + 17 + 8 + 58 + 64];
    memset(seg, 0, sizeof(seg));
    memcpy(seg, "qkv-wal\n", 8);
    qkv_put_le32(seg + 8, 1);
    qkv_put_le32(seg + 12, qkv_crc32c(0, seg, 12));
    uint8_t *r = seg + 16;
    qkv_put_le32(r + 4, 17);
    r[8] = 1;
    qkv_put_le64(r + 9, S_CLUSTER);
    qkv_put_le64(r + 17, 1);
    qkv_put_le32(r, qkv_crc32c(0, r + 4, 4 + 17));
    r += 8 + 17;
    qkv_put_le32(r + 4, 58);
    r[8] = 2;
    qkv_put_le64(r + 9, 1);      /* index */
    qkv_put_le64(r + 17, 1);     /* term */
    r[8 + 41] = QKV_OP_PUT;      /* op */
    qkv_put_le32(r + 8 + 42, 3); /* key length */
    qkv_put_le32(r + 8 + 46, 5); /* value length */
    memcpy(r + 8 + 50, "keyvalue", 8);
    qkv_put_le32(r, qkv_crc32c(0, r + 4, 4 + 58));
    s_seed("fuzz_wal", "old-state-zero-room", 0x06, seg, sizeof(seg));
    rmdir(dir);
}

/*  =====================================================================
    Snapshot images (first byte: flags, see fuzz_snap.c) */

static void s_snap(void) {
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(100, 1000000);
    if (!store || !sessions)
        s_die("out of memory");
    qkv_snap_meta_t meta = {.cluster_id = S_CLUSTER, .term = 1};
    qkv_buf_t image = {0};
    if (qkv_snap_encode(store, sessions, &meta, &image) != 0)
        s_die("encode");
    s_seed("fuzz_snap", "empty", 0x08, image.data, image.size);

    uint64_t index = 0;
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 6; k++) {
            char key[16], value[32];
            int kl = snprintf(key, sizeof(key), "key-%d", k);
            int vl = snprintf(value, sizeof(value), "value-%d-%d", k, round);
            qkv_entry_t *e = qkv_entry_new(
                k == 5 && round ? QKV_OP_DELETE : QKV_OP_PUT, key, (size_t)kl,
                value, k == 5 && round ? 0 : (size_t)vl);
            if (!e)
                s_die("out of memory");
            e->index = ++index;
            e->client_id = 3 + (uint64_t)(k % 2);
            e->client_seq = index;
            e->time_ms = 1000 + index;
            uint64_t result = 0;
            if (qkv_store_apply(store, e, &result) != 0 ||
                qkv_sessions_record(sessions, e->client_id, e->client_seq,
                                    qkv_entry_hash(e), e->index, result,
                                    e->time_ms) != 0)
                s_die("apply");
            qkv_sessions_tick(sessions, e->time_ms);
            free(e);
        }
    meta =
        (qkv_snap_meta_t){.cluster_id = S_CLUSTER, .index = index, .term = 2};
    if (qkv_snap_encode(store, sessions, &meta, &image) != 0)
        s_die("encode");
    s_seed("fuzz_snap", "keys-and-sessions", 0x08, image.data, image.size);
    s_seed("fuzz_snap", "keys-and-sessions-fix-crc", 0x09, image.data,
           image.size);
    s_seed("fuzz_snap", "keys-and-sessions-file", 0x0a, image.data, image.size);
    s_seed("fuzz_snap", "keys-and-sessions-window-3", 0x05, image.data,
           image.size);
    qkv_buf_free(&image);
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    s_out = argv[1];
    if (mkdir(s_out, 0755) != 0 && errno != EEXIST)
        s_die(s_out);
    qkv_encoder_t *enc = qkv_encoder_new();
    if (!enc)
        s_die("out of memory");
    s_msg(enc);
    s_cmsg(enc);
    qkv_encoder_destroy(&enc);
    s_rest();
    s_config();
    s_wal();
    s_snap();
    return 0;
}
