/*  test_proto.c - the replication wire format (proto/include/qkv_msg.h).

    Round trips through qkv_encoder/qkv_decoder, and the decoder's
    strictness: truncations, trailing bytes, wrong types and lengths, limits,
    hostile declared lengths (fail fast, no huge allocation), deep nesting,
    and seeded random frames and mutations that must never crash it. Invalid
    frames are the encoder's own valid frames with one element changed (a
    small msgpack walker splits them), so they hold whatever the layout;
    every frame is decoded from an exact-size heap copy so AddressSanitizer
    sees any read past its end.
*/
#include "kit.h"
#include "qkv_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* spec_t tables leave the session fields out where they do not matter */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define KEY_MAX 4096
#define VALUE_MAX (1024 * 1024)
#define FRAME_MAX (64 * 1024 * 1024)

static qkv_decoder_t *s_dec;
static qkv_encoder_t *s_enc;

/*  ---------------------------------------------------------------------
    Measuring the largest allocation made while decoding */

static volatile int s_tracking;
static volatile size_t s_largest;

static void s_note_alloc(size_t size) {
    if (s_tracking && size > s_largest)
        s_largest = size;
}

#if defined(__SANITIZE_ADDRESS__)
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));

static void s_malloc_hook(const volatile void *ptr, size_t size) {
    (void)ptr;
    s_note_alloc(size);
}

static void s_free_hook(const volatile void *ptr) {
    (void)ptr;
}

static void s_install_alloc_tracking(void) {
    __sanitizer_install_malloc_and_free_hooks(s_malloc_hook, s_free_hook);
}
#elif defined(__GLIBC__)
/* Without AddressSanitizer, interpose glibc's allocator. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

void *malloc(size_t size) {
    s_note_alloc(size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    s_note_alloc(n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
    s_note_alloc(size);
    return __libc_realloc(ptr, size);
}

static void s_install_alloc_tracking(void) {
}
#else
static void s_install_alloc_tracking(void) {
}
#endif

/*  ---------------------------------------------------------------------
    A tiny msgpack writer for hand-made frames */

typedef struct {
    uint8_t data[4096];
    size_t size;
} mp_t;

static void mp_byte(mp_t *m, uint8_t b) {
    CU_ASSERT_FATAL(m->size < sizeof m->data);
    m->data[m->size++] = b;
}

static void mp_be(mp_t *m, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        mp_byte(m, (uint8_t)(v >> (8 * i)));
}

static void mp_array(mp_t *m, uint32_t n) {
    if (n < 16)
        mp_byte(m, (uint8_t)(0x90 | n));
    else if (n <= UINT16_MAX)
        mp_byte(m, 0xdc), mp_be(m, n, 2);
    else
        mp_byte(m, 0xdd), mp_be(m, n, 4);
}

/*  ---------------------------------------------------------------------
    Decoding helpers */

/* A decode from an exact-size copy; msg points into copy. */
typedef struct {
    uint8_t *copy;
    size_t size;
    int rc;
    const qkv_msg_t *msg;
} dec_t;

static void dec_run(dec_t *d, qkv_decoder_t *dec, const void *data,
                    size_t size) {
    d->copy = malloc(size ? size : 1);
    CU_ASSERT_FATAL(d->copy != NULL);
    if (size)
        memcpy(d->copy, data, size);
    d->size = size;
    d->msg = NULL;
    d->rc = qkv_decoder_decode(dec, d->copy, size, &d->msg);
}

static void dec_free(dec_t *d) {
    free(d->copy);
    d->copy = NULL;
}

/* Decodes with s_dec and returns the result code only. */
static int decode_rc(const void *data, size_t size) {
    dec_t d;
    dec_run(&d, s_dec, data, size);
    dec_free(&d);
    return d.rc;
}

static bool inside(const dec_t *d, const char *p, size_t len) {
    const char *start = (const char *)d->copy;
    return len == 0 || (p >= start && p + len <= start + d->size);
}

/* What any successful decode must satisfy, whatever the input. */
static void check_sane(const dec_t *d, const qkv_decoder_limits_t *lim) {
    CU_ASSERT_FATAL(d->msg != NULL);
    const qkv_msg_t *msg = d->msg;
    CU_ASSERT(msg->type == QKV_MSG_APPEND || msg->type == QKV_MSG_ACK);
    if (msg->type == QKV_MSG_ACK)
        CU_ASSERT_EQUAL(msg->entry_count, 0);
    CU_ASSERT(msg->entry_count == 0 || msg->entries != NULL);
    CU_ASSERT(msg->entry_count <= d->size);
    for (size_t i = 0; i < msg->entry_count && msg->entries; i++) {
        const qkv_entry_view_t *e = &msg->entries[i];
        CU_ASSERT(e->key_len <= lim->max_key_bytes);
        CU_ASSERT(e->value_len <= lim->max_value_bytes);
        CU_ASSERT(inside(d, e->key, e->key_len));
        CU_ASSERT(inside(d, e->value, e->value_len));
    }
}

/*  ---------------------------------------------------------------------
    Encoding helpers */

typedef struct {
    qkv_op_t op;
    uint64_t term;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    uint64_t client_id, client_seq, time_ms; /* 0 unless given */
} spec_t;

/* The header fields an APPEND of cluster id repl carries in these tests:
   each a different function of the arguments, so a field read from the
   wrong place shows. Terms stay within QKV_TERM_MAX. */
static uint64_t s_term_of(uint64_t repl) {
    return (repl / 2 + 1) % (QKV_TERM_MAX + 1);
}
static uint64_t s_prev_term_of(uint64_t prev) {
    return prev / 3 % (QKV_TERM_MAX + 1);
}

#define S_LEADER "tcp://127.0.0.1:7000"
static const char *s_leader = S_LEADER; /* endpoint APPENDs carry */

/* A copy of the encoder's frame. */
static uint8_t *s_copy_frame(size_t *size) {
    const void *data = qkv_encoder_data(s_enc, size);
    CU_ASSERT_FATAL(data != NULL);
    uint8_t *copy = malloc(*size);
    CU_ASSERT_FATAL(copy != NULL);
    memcpy(copy, data, *size);
    return copy;
}

/* Encodes an APPEND of n entries carrying s_leader; returns a malloc'd copy
   of the frame. */
static uint8_t *encode_append(uint64_t repl, uint64_t prev, uint64_t commit,
                              const spec_t *specs, size_t n, size_t *size) {
    qkv_append_head_t head = {
        repl,     s_term_of(repl), prev, s_prev_term_of(prev), commit,
        s_leader, strlen(s_leader)};
    qkv_encoder_append_begin(s_enc, &head, n);
    for (size_t i = 0; i < n; i++) {
        qkv_entry_t *e =
            qkv_entry_new(specs[i].op, specs[i].key, specs[i].key_len,
                          specs[i].value, specs[i].value_len);
        CU_ASSERT_FATAL(e != NULL);
        e->term = specs[i].term;
        e->client_id = specs[i].client_id;
        e->client_seq = specs[i].client_seq;
        e->time_ms = specs[i].time_ms;
        qkv_encoder_add_entry(s_enc, e);
        free(e);
    }
    return s_copy_frame(size);
}

/* An ACK of cluster repl: ok with index last, or a refusal of last with
   a hint of last / 2 when last is odd. */
static uint8_t *encode_ack(uint64_t repl, uint64_t last, size_t *size) {
    bool ok = last % 2 == 0;
    qkv_ack_t ack = {repl, s_term_of(repl),   ok,
                     last, ok ? 0 : last / 2, ok ? 0 : s_term_of(last)};
    qkv_encoder_ack(s_enc, &ack);
    return s_copy_frame(size);
}

/* Encodes, decodes and compares every field. */
static void roundtrip(uint64_t repl, uint64_t prev, uint64_t commit,
                      const spec_t *specs, size_t n) {
    size_t size;
    uint8_t *frame = encode_append(repl, prev, commit, specs, n, &size);
    dec_t d;
    dec_run(&d, s_dec, frame, size);
    CU_ASSERT_EQUAL_FATAL(d.rc, 0);
    CU_ASSERT_EQUAL(d.msg->type, QKV_MSG_APPEND);
    CU_ASSERT(d.msg->version == QKV_REPL_VERSION);
    CU_ASSERT(d.msg->cluster_id == repl);
    CU_ASSERT(d.msg->term == s_term_of(repl));
    CU_ASSERT(d.msg->prev_index == prev);
    CU_ASSERT(d.msg->prev_term == s_prev_term_of(prev));
    CU_ASSERT(d.msg->commit_index == commit);
    CU_ASSERT(d.msg->index == 0 && !d.msg->ok);
    CU_ASSERT_EQUAL(d.msg->leader_len, strlen(s_leader));
    CU_ASSERT(d.msg->leader_len != strlen(s_leader) ||
              memcmp(d.msg->leader, s_leader, d.msg->leader_len) == 0);
    CU_ASSERT_EQUAL_FATAL(d.msg->entry_count, n);
    for (size_t i = 0; i < n; i++) {
        const qkv_entry_view_t *e = &d.msg->entries[i];
        CU_ASSERT(e->term == specs[i].term);
        CU_ASSERT(e->client_id == specs[i].client_id);
        CU_ASSERT(e->client_seq == specs[i].client_seq);
        CU_ASSERT(e->time_ms == specs[i].time_ms);
        CU_ASSERT_EQUAL(e->op, specs[i].op);
        CU_ASSERT_EQUAL_FATAL(e->key_len, specs[i].key_len);
        CU_ASSERT_EQUAL_FATAL(e->value_len, specs[i].value_len);
        CU_ASSERT(e->key_len == 0 ||
                  memcmp(e->key, specs[i].key, e->key_len) == 0);
        CU_ASSERT(e->value_len == 0 ||
                  memcmp(e->value, specs[i].value, e->value_len) == 0);
        CU_ASSERT(inside(&d, e->key, e->key_len));
        CU_ASSERT(inside(&d, e->value, e->value_len));
    }
    dec_free(&d);
    free(frame);
}

/*  ---------------------------------------------------------------------
    Round trips */

static void test_entry_new(void) {
    qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "ke\0y", 4, "val", 3);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT(e->index == 0 && e->term == 0 && e->time_ms == 0);
    CU_ASSERT(e->client_id == 0 && e->client_seq == 0);
    CU_ASSERT_EQUAL(e->op, QKV_OP_PUT);
    CU_ASSERT_EQUAL(e->key_len, 4);
    CU_ASSERT_EQUAL(e->value_len, 3);
    CU_ASSERT(memcmp(e->data, "ke\0yval", 7) == 0);
    free(e);
    e = qkv_entry_new(QKV_OP_RESET, "", 0, "", 0);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT_EQUAL(e->key_len, 0);
    CU_ASSERT_EQUAL(e->value_len, 0);
    CU_ASSERT_EQUAL(e->op, QKV_OP_RESET);
    free(e);
}

static void test_roundtrip_ack(void) {
    const uint64_t cases[][2] = {
        {0, 0}, {1, 2}, {127, 128}, {65535, 65536}, {UINT64_MAX, UINT64_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t size;
        uint8_t *frame = encode_ack(cases[i][0], cases[i][1], &size);
        dec_t d;
        dec_run(&d, s_dec, frame, size);
        CU_ASSERT_EQUAL_FATAL(d.rc, 0);
        CU_ASSERT_EQUAL(d.msg->type, QKV_MSG_ACK);
        uint64_t last = cases[i][1];
        bool ok = last % 2 == 0;
        CU_ASSERT(d.msg->cluster_id == cases[i][0]);
        CU_ASSERT(d.msg->term == s_term_of(cases[i][0]));
        CU_ASSERT(d.msg->ok == ok);
        CU_ASSERT(d.msg->index == last);
        CU_ASSERT(d.msg->hint_index == (ok ? 0 : last / 2));
        CU_ASSERT(d.msg->hint_term == (ok ? 0 : s_term_of(last)));
        CU_ASSERT(d.msg->prev_index == 0);
        CU_ASSERT(d.msg->commit_index == 0);
        CU_ASSERT_EQUAL(d.msg->entry_count, 0);
        dec_free(&d);
        free(frame);
    }
}

static void test_roundtrip_vote(void) {
    for (int type = QKV_MSG_VOTE; type <= QKV_MSG_VOTE_ACK; type++)
        for (int pre = 0; pre < 2; pre++) {
            qkv_vote_t v = {type, UINT64_MAX,      7,   pre, 123456789, 6,
                            !pre, 0xabcdef0123ULL, !pre};
            qkv_encoder_vote(s_enc, &v);
            size_t size;
            uint8_t *frame = s_copy_frame(&size);
            dec_t d;
            dec_run(&d, s_dec, frame, size);
            CU_ASSERT_EQUAL_FATAL(d.rc, 0);
            CU_ASSERT_EQUAL(d.msg->type, type);
            CU_ASSERT(d.msg->cluster_id == UINT64_MAX);
            CU_ASSERT(d.msg->term == 7);
            CU_ASSERT(d.msg->pre == (bool)pre);
            CU_ASSERT(d.msg->cluster_hash == 0xabcdef0123ULL);
            if (type == QKV_MSG_VOTE) {
                CU_ASSERT(d.msg->transfer == !pre);
                CU_ASSERT(d.msg->last_index == 123456789);
                CU_ASSERT(d.msg->last_term == 6);
                CU_ASSERT(!d.msg->granted);
            } else {
                CU_ASSERT(d.msg->granted == !pre);
                CU_ASSERT(d.msg->last_index == 0);
            }
            dec_free(&d);
            free(frame);
        }
}

static void test_roundtrip_timeout_now(void) {
    qkv_encoder_timeout_now(s_enc, UINT64_MAX, 12, 0x55);
    size_t size;
    uint8_t *frame = s_copy_frame(&size);
    dec_t d;
    dec_run(&d, s_dec, frame, size);
    CU_ASSERT_EQUAL_FATAL(d.rc, 0);
    CU_ASSERT_EQUAL(d.msg->type, QKV_MSG_TIMEOUT_NOW);
    CU_ASSERT(d.msg->cluster_id == UINT64_MAX && d.msg->term == 12);
    CU_ASSERT(d.msg->cluster_hash == 0x55);
    dec_free(&d);
    free(frame);
}

/* Every term field takes QKV_TERM_MAX and refuses one above it, so a
   node's term + 1 never overflows whatever a peer sends. */
static void test_term_bound(void) {
    const uint64_t terms[] = {QKV_TERM_MAX, QKV_TERM_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        int want = i == 0 ? 0 : QKV_MALFORMED;
        qkv_vote_t v = {QKV_MSG_VOTE, 1, terms[i], false, 5, 1, false, 9, 0};
        qkv_vote_t last = {QKV_MSG_VOTE, 1, 3, false, 5, terms[i], false, 9, 0};
        qkv_ack_t ack = {1, 3, false, 7, 6, terms[i], 0};
        qkv_append_head_t head = {
            .cluster_id = 1, .term = 3, .prev_index = 4, .prev_term = terms[i]};
        for (int k = 0; k < 5; k++) {
            if (k == 0)
                qkv_encoder_vote(s_enc, &v);
            else if (k == 1)
                qkv_encoder_vote(s_enc, &last);
            else if (k == 2)
                qkv_encoder_ack(s_enc, &ack);
            else if (k == 3)
                qkv_encoder_timeout_now(s_enc, 1, terms[i], 9);
            else
                qkv_encoder_append_begin(s_enc, &head, 0);
            size_t size;
            uint8_t *frame = s_copy_frame(&size);
            dec_t d;
            dec_run(&d, s_dec, frame, size);
            if (d.rc != want)
                fprintf(stderr, "\n  term %llu, message %d: rc %d",
                        (unsigned long long)terms[i], k, d.rc);
            CU_ASSERT_EQUAL(d.rc, want);
            dec_free(&d);
            free(frame);
        }
    }
}

/* The leader's clock in an APPEND and its echo in an ACK go through;
   a clock above INT64_MAX is malformed. */
static void test_roundtrip_clocks(void) {
    qkv_append_head_t head = {1, 1, 0, 0, 0, NULL, 0, 2, INT64_MAX, 0};
    qkv_encoder_append_begin(s_enc, &head, 0);
    size_t size;
    uint8_t *frame = s_copy_frame(&size);
    dec_t d;
    dec_run(&d, s_dec, frame, size);
    CU_ASSERT_EQUAL_FATAL(d.rc, 0);
    CU_ASSERT(d.msg->sent_us == INT64_MAX);
    CU_ASSERT(d.msg->has_fsync && d.msg->fsync == 2);
    CU_ASSERT(d.msg->cluster_hash == 0);
    dec_free(&d);
    /* the same frame with the clock as uint64 2^63 (the hash, 0, last) */
    CU_ASSERT_FATAL(frame[size - 10] == 0xcf && frame[size - 1] == 0);
    frame[size - 9] = 0x80;
    memset(frame + size - 8, 0, 7);
    dec_run(&d, s_dec, frame, size);
    CU_ASSERT_EQUAL(d.rc, QKV_MALFORMED);
    dec_free(&d);
    free(frame);
    qkv_ack_t ack = {1, 1, true, 5, 0, 0, 1733400000000000LL};
    qkv_encoder_ack(s_enc, &ack);
    frame = s_copy_frame(&size);
    dec_run(&d, s_dec, frame, size);
    CU_ASSERT_EQUAL_FATAL(d.rc, 0);
    CU_ASSERT(d.msg->echo_us == 1733400000000000LL);
    dec_free(&d);
    free(frame);
}

static void test_roundtrip_heartbeat(void) {
    roundtrip(1, 0, 0, NULL, 0);
    roundtrip(0xdeadbeefcafef00dULL, 1000, 999, NULL, 0);
    roundtrip(UINT64_MAX, UINT64_MAX, UINT64_MAX, NULL, 0);
}

static void test_roundtrip_one_entry(void) {
    spec_t put = {QKV_OP_PUT, 3, "key", 3, "value", 5};
    roundtrip(3, 0, 0, &put, 1);
    spec_t del = {QKV_OP_DELETE, 3, "key", 3, "", 0};
    roundtrip(3, 41, 40, &del, 1);
    spec_t reset = {QKV_OP_RESET, 3, "", 0, "", 0};
    roundtrip(3, 7, 7, &reset, 1);
    spec_t max = {QKV_OP_PUT, QKV_TERM_MAX,      "k",        1,         "v",
                  1,          QKV_CLIENT_ID_MAX, UINT64_MAX, UINT64_MAX};
    roundtrip(UINT64_MAX, UINT64_MAX - 1, UINT64_MAX, &max, 1);
    spec_t tagged = {QKV_OP_PUT, 4, "k", 1, "v", 1, 77, 5, 1733400000123};
    roundtrip(8, 3, 2, &tagged, 1);
}

static void test_roundtrip_binary(void) {
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    const char nul_key[] = "\0a\0";
    const char bad_utf8[] = "\xff\xfe\xc0\x80\xed\xa0\x80";
    spec_t specs[] = {
        {QKV_OP_PUT, 1, "", 0, "", 0},
        {QKV_OP_PUT, 1, "", 0, "v", 1},
        {QKV_OP_PUT, 1, "k", 1, "", 0},
        {QKV_OP_PUT, 1, nul_key, 3, nul_key, 3},
        {QKV_OP_PUT, 1, "\0", 1, "\0\0\0\0", 4},
        {QKV_OP_PUT, 1, all, 256, all, 256},
        {QKV_OP_PUT, 1, bad_utf8, 7, bad_utf8, 7},
    };
    size_t n = sizeof specs / sizeof specs[0];
    for (size_t i = 0; i < n; i++)
        roundtrip(9, i, i, &specs[i], 1);
    roundtrip(9, 100, 50, specs, n);
}

static void test_roundtrip_many(void) {
    enum { N = 1000 };
    static spec_t specs[N];
    static char bytes[N][2][300];
    kit_rng_t rng;
    kit_rng_seed(&rng, 42);
    for (size_t i = 0; i < N; i++) {
        for (size_t b = 0; b < 300; b++) {
            bytes[i][0][b] = (char)kit_rng_next(&rng);
            bytes[i][1][b] = (char)kit_rng_next(&rng);
        }
        specs[i] = (spec_t){
            QKV_OP_PUT,         kit_rng_next(&rng) % (QKV_TERM_MAX + 1),
            bytes[i][0],        kit_rng_below(&rng, 300),
            bytes[i][1],        kit_rng_below(&rng, 300),
            kit_rng_next(&rng), kit_rng_next(&rng),
            kit_rng_next(&rng)};
    }
    roundtrip(5, 12345, 12000, specs, N);
    roundtrip(5, 0, 0, specs, 16);
    roundtrip(5, 0, 0, specs, 15);
}

static void test_roundtrip_sizes(void) {
    /* Every msgpack length class: fix, 8, 16 and 32 bits. */
    static char big[70000];
    memset(big, 'x', sizeof big);
    const size_t sizes[] = {31, 32, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t klen = sizes[i] < KEY_MAX ? sizes[i] : KEY_MAX;
        spec_t s = {QKV_OP_PUT, 2, big, klen, big, sizes[i]};
        roundtrip(2, 0, 0, &s, 1);
    }
}

static void test_decoder_limits_exact(void) {
    char *key = malloc(KEY_MAX + 1);
    char *value = malloc(VALUE_MAX + 1);
    CU_ASSERT_FATAL(key && value);
    memset(key, 'k', KEY_MAX + 1);
    memset(value, 'v', VALUE_MAX + 1);
    spec_t at = {QKV_OP_PUT, 1, key, KEY_MAX, value, VALUE_MAX};
    roundtrip(1, 0, 0, &at, 1);
    size_t size;
    spec_t long_key = {QKV_OP_PUT, 1, key, KEY_MAX + 1, "v", 1};
    uint8_t *frame = encode_append(1, 0, 0, &long_key, 1, &size);
    CU_ASSERT_EQUAL(decode_rc(frame, size), QKV_MALFORMED);
    free(frame);
    spec_t long_value = {QKV_OP_PUT, 1, "k", 1, value, VALUE_MAX + 1};
    frame = encode_append(1, 0, 0, &long_value, 1, &size);
    CU_ASSERT_EQUAL(decode_rc(frame, size), QKV_MALFORMED);
    free(frame);
    free(key);
    free(value);
}

static void test_decoder_frame_limit(void) {
    spec_t s = {QKV_OP_PUT, 1, "key", 3, "a value of some length", 22};
    size_t size;
    uint8_t *frame = encode_append(1, 0, 0, &s, 1, &size);
    qkv_decoder_limits_t lim = {size, KEY_MAX, VALUE_MAX};
    qkv_decoder_t *dec = qkv_decoder_new(&lim);
    CU_ASSERT_FATAL(dec != NULL);
    dec_t d;
    dec_run(&d, dec, frame, size);
    CU_ASSERT_EQUAL(d.rc, 0);
    dec_free(&d);
    qkv_decoder_destroy(&dec);
    CU_ASSERT(dec == NULL);
    lim.max_frame_bytes = size - 1;
    dec = qkv_decoder_new(&lim);
    CU_ASSERT_FATAL(dec != NULL);
    dec_run(&d, dec, frame, size);
    CU_ASSERT_EQUAL(d.rc, QKV_MALFORMED);
    dec_free(&d);
    qkv_decoder_destroy(&dec);
    qkv_decoder_destroy(&dec); /* safe twice */
    free(frame);
}

static void test_wire_size_bound(void) {
    spec_t specs[40];
    static char buf[2000];
    memset(buf, 'z', sizeof buf);
    for (size_t i = 0; i < 40; i++)
        specs[i] =
            (spec_t){QKV_OP_PUT, UINT64_MAX - i, buf, i * 37, buf, i * 49};
    size_t empty_size, size, bound = 0;
    uint8_t *empty = encode_append(UINT64_MAX, 1, 1, NULL, 0, &empty_size);
    uint8_t *frame = encode_append(UINT64_MAX, 1, 1, specs, 40, &size);
    for (size_t i = 0; i < 40; i++) {
        qkv_entry_t *e = qkv_entry_new(specs[i].op, buf, specs[i].key_len, buf,
                                       specs[i].value_len);
        CU_ASSERT_FATAL(e != NULL);
        e->term = specs[i].term;
        e->client_id = e->client_seq = e->time_ms = UINT64_MAX;
        CU_ASSERT(qkv_entry_wire_size(e) >=
                  specs[i].key_len + specs[i].value_len);
        bound += qkv_entry_wire_size(e);
        free(e);
    }
    /* The entries array header may grow from 1 to 3 bytes. */
    CU_ASSERT(size <= empty_size + 4 + bound);
    free(empty);
    free(frame);
}

static void test_encoder_reuse(void) {
    qkv_encoder_t *enc = qkv_encoder_new();
    CU_ASSERT_FATAL(enc != NULL);
    qkv_ack_t ack = {1, 1, true, 2, 0, 0};
    qkv_encoder_ack(enc, &ack);
    size_t ack_size;
    CU_ASSERT(qkv_encoder_data(enc, &ack_size) != NULL);
    qkv_append_head_t head = {1, 1, 0, 0, 0, NULL, 0};
    qkv_encoder_append_begin(enc, &head, 0);
    size_t hb_size;
    const void *hb = qkv_encoder_data(enc, &hb_size);
    CU_ASSERT_FATAL(hb != NULL);
    dec_t d;
    dec_run(&d, s_dec, hb, hb_size);
    CU_ASSERT_EQUAL(d.rc, 0);
    CU_ASSERT(d.rc != 0 || d.msg->type == QKV_MSG_APPEND);
    dec_free(&d);
    qkv_encoder_destroy(&enc);
    CU_ASSERT(enc == NULL);
    qkv_encoder_destroy(&enc);
}

static void test_decoder_reuse(void) {
    spec_t s = {QKV_OP_PUT, 1, "k", 1, "v", 1};
    size_t size;
    uint8_t *frame = encode_append(1, 0, 0, &s, 1, &size);
    const uint8_t junk[] = {0x95, 0x01, 0xa1};
    for (int round = 0; round < 3; round++) {
        CU_ASSERT_EQUAL(decode_rc(junk, sizeof junk), QKV_MALFORMED);
        dec_t d;
        dec_run(&d, s_dec, frame, size);
        CU_ASSERT_EQUAL_FATAL(d.rc, 0);
        CU_ASSERT_EQUAL(d.msg->entry_count, 1);
        dec_free(&d);
    }
    roundtrip(1, 0, 0, NULL, 0);
    free(frame);
}

/* The example in PROTOCOL.md, byte for byte. */
static void test_documented_example(void) {
    qkv_append_head_t head = {0x1122334455667788ULL, 1, 0, 0, 0, "", 0};
    qkv_encoder_append_begin(s_enc, &head, 1);
    qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "k", 1, "v", 1);
    CU_ASSERT_FATAL(e != NULL);
    e->term = 1;
    e->client_id = 5;
    e->client_seq = 1;
    e->time_ms = 1733400000000ULL;
    qkv_encoder_add_entry(s_enc, e);
    free(e);
    static const uint8_t append[] = {
        0x9c, 0x01, 0x01, 0xcf, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
        0x77, 0x88, 0x01, 0x00, 0x00, 0x00, 0xa0, 0x91, 0x97, 0x01,
        0x01, 0xa1, 0x6b, 0xa1, 0x76, 0x05, 0x01, 0xcf, 0x00, 0x00,
        0x01, 0x93, 0x96, 0xb0, 0xf6, 0x00, 0x00, 0x00, 0x00};
    size_t size;
    const void *data = qkv_encoder_data(s_enc, &size);
    CU_ASSERT_EQUAL_FATAL(size, sizeof append);
    CU_ASSERT(memcmp(data, append, size) == 0);
    qkv_ack_t ack = {0x1122334455667788ULL, 1, true, 1, 0, 0};
    qkv_encoder_ack(s_enc, &ack);
    static const uint8_t ack_bytes[] = {0x99, 0x02, 0x01, 0xcf, 0x11, 0x22,
                                        0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                        0x01, 0xc3, 0x01, 0x00, 0x00, 0x00};
    data = qkv_encoder_data(s_enc, &size);
    CU_ASSERT_EQUAL_FATAL(size, sizeof ack_bytes);
    CU_ASSERT(memcmp(data, ack_bytes, size) == 0);
}

/*  ---------------------------------------------------------------------
    Taking frames apart: a small msgpack walker, so that invalid frames are
    made from the encoder's own valid ones by changing one element. The
    tests then hold whatever the exact layout of a message is. */

#define MP_MAX_ELEMS 16

typedef struct {
    size_t start, end; /* bytes [start, end) of one element */
} span_t;

static size_t mp_skip(const uint8_t *d, size_t size, size_t pos, int depth);

/* End of n consecutive values from pos, 0 when they do not fit. */
static size_t mp_skip_n(const uint8_t *d, size_t size, size_t pos, uint64_t n,
                        int depth) {
    for (uint64_t i = 0; i < n && pos; i++)
        pos = mp_skip(d, size, pos, depth);
    return pos;
}

static uint64_t mp_read_be(const uint8_t *d, size_t pos, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | d[pos + (size_t)i];
    return v;
}

/* Length-prefixed data: header of h bytes with a length of l bytes. */
static size_t mp_skip_sized(const uint8_t *d, size_t size, size_t pos, int h,
                            int l) {
    if (pos + (size_t)h > size)
        return 0;
    uint64_t n = mp_read_be(d, pos + 1, l);
    return pos + (size_t)h + n <= size ? pos + (size_t)h + (size_t)n : 0;
}

/* End of the value at pos, 0 when it does not fit or is not understood. */
static size_t mp_skip(const uint8_t *d, size_t size, size_t pos, int depth) {
    if (pos >= size || depth > 64)
        return 0;
    uint8_t b = d[pos];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return pos + 1;
    if ((b & 0xe0) == 0xa0)
        return pos + 1 + (b & 0x1f) <= size ? pos + 1 + (b & 0x1f) : 0;
    if ((b & 0xf0) == 0x90)
        return mp_skip_n(d, size, pos + 1, b & 0x0f, depth + 1);
    if ((b & 0xf0) == 0x80)
        return mp_skip_n(d, size, pos + 1, 2u * (b & 0x0f), depth + 1);
    static const struct {
        uint8_t byte;
        int fixed;    /* bytes after the type byte, or 0 */
        int len;      /* bytes of length for sized types */
        int children; /* 1: array, 2: map */
    } t[] = {
        {0xcc, 1, 0, 0}, {0xcd, 2, 0, 0}, {0xce, 4, 0, 0}, {0xcf, 8, 0, 0},
        {0xd0, 1, 0, 0}, {0xd1, 2, 0, 0}, {0xd2, 4, 0, 0}, {0xd3, 8, 0, 0},
        {0xca, 4, 0, 0}, {0xcb, 8, 0, 0}, {0xc4, 0, 1, 0}, {0xc5, 0, 2, 0},
        {0xc6, 0, 4, 0}, {0xd9, 0, 1, 0}, {0xda, 0, 2, 0}, {0xdb, 0, 4, 0},
        {0xdc, 0, 2, 1}, {0xdd, 0, 4, 1}, {0xde, 0, 2, 2}, {0xdf, 0, 4, 2}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (t[i].byte != b)
            continue;
        if (t[i].fixed)
            return pos + 1 + (size_t)t[i].fixed <= size
                       ? pos + 1 + (size_t)t[i].fixed
                       : 0;
        if (!t[i].children)
            return mp_skip_sized(d, size, pos, 1 + t[i].len, t[i].len);
        if (pos + 1 + (size_t)t[i].len > size)
            return 0;
        uint64_t n = mp_read_be(d, pos + 1, t[i].len) * (uint64_t)t[i].children;
        return mp_skip_n(d, size, pos + 1 + (size_t)t[i].len, n, depth + 1);
    }
    return 0;
}

/* Splits the array at pos into element spans; returns their number. */
static size_t mp_split(const uint8_t *d, size_t size, size_t pos,
                       span_t *spans) {
    CU_ASSERT_FATAL(pos < size);
    uint8_t b = d[pos];
    size_t n, at;
    if ((b & 0xf0) == 0x90) {
        n = b & 0x0f;
        at = pos + 1;
    } else {
        CU_ASSERT_FATAL(b == 0xdc && pos + 3 <= size);
        n = (size_t)mp_read_be(d, pos + 1, 2);
        at = pos + 3;
    }
    CU_ASSERT_FATAL(n <= MP_MAX_ELEMS);
    for (size_t i = 0; i < n; i++) {
        spans[i].start = at;
        at = mp_skip(d, size, at, 0);
        CU_ASSERT_FATAL(at != 0);
        spans[i].end = at;
    }
    return n;
}

static bool mp_is_int(const uint8_t *d, span_t s) {
    uint8_t b = d[s.start];
    return b <= 0x7f || (b >= 0xcc && b <= 0xcf);
}

static bool mp_is_str(const uint8_t *d, span_t s) {
    uint8_t b = d[s.start];
    return (b & 0xe0) == 0xa0 || b == 0xd9 || b == 0xda || b == 0xdb;
}

static bool mp_is_bool(const uint8_t *d, span_t s) {
    return d[s.start] == 0xc2 || d[s.start] == 0xc3;
}

static bool mp_is_array(const uint8_t *d, span_t s) {
    uint8_t b = d[s.start];
    return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

static uint64_t mp_uint_value(const uint8_t *d, span_t s) {
    uint8_t b = d[s.start];
    if (b <= 0x7f)
        return b;
    return mp_read_be(d, s.start + 1, 1 << (b - 0xcc));
}

static void mp_raw(mp_t *m, const void *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        mp_byte(m, ((const uint8_t *)bytes)[i]);
}

/* A frame as its elements, each as bytes, to be changed and put back. */
typedef struct {
    size_t count;
    mp_t elem[MP_MAX_ELEMS]; /* each element's bytes */
} parts_t;

static void parts_of(parts_t *p, const uint8_t *d, size_t size, size_t pos) {
    span_t spans[MP_MAX_ELEMS];
    memset(p, 0, sizeof *p);
    p->count = mp_split(d, size, pos, spans);
    for (size_t i = 0; i < p->count; i++)
        mp_raw(&p->elem[i], d + spans[i].start, spans[i].end - spans[i].start);
}

/* Writes the parts back as one array into m. */
static void parts_join(const parts_t *p, mp_t *m) {
    mp_array(m, (uint32_t)p->count);
    for (size_t i = 0; i < p->count; i++)
        mp_raw(m, p->elem[i].data, p->elem[i].size);
}

static void parts_set(parts_t *p, size_t i, const void *bytes, size_t n) {
    CU_ASSERT_FATAL(i < MP_MAX_ELEMS);
    p->elem[i].size = 0;
    mp_raw(&p->elem[i], bytes, n);
}

/* The reference frames, in whatever layout the encoder uses: an APPEND of
   cluster 1 after index 0 with leader "L" and one entry
   [5, 1, "kk", "vv", 0, 0, 0], and a refusing ACK of cluster 1 (index 9,
   hint 4). */
typedef struct {
    parts_t append;      /* top-level elements of the APPEND */
    size_t entries_at;   /* index of the entries element */
    size_t leader_at;    /* index of the leader element, or 0 if none */
    parts_t entry;       /* elements of its one entry */
    parts_t ack;         /* top-level elements of the ACK */
    parts_t vote;        /* a VOTE: cluster 1, term 3, pre, last (9, 2) */
    parts_t vote_ack;    /* a VOTE_ACK: cluster 1, term 3, pre, granted */
    parts_t timeout_now; /* a TIMEOUT_NOW: cluster 1, term 3, hash 9 */
} refs_t;

static void refs_make(refs_t *r) {
    spec_t s = {QKV_OP_PUT, 5, "kk", 2, "vv", 2};
    size_t size;
    s_leader = "L";
    uint8_t *frame = encode_append(1, 0, 0, &s, 1, &size);
    s_leader = S_LEADER;
    parts_of(&r->append, frame, size, 0);
    r->entries_at = 8; /* then the FSYNC trailer */
    r->leader_at = 0;
    for (size_t i = 1; i < r->append.count; i++)
        if (r->append.elem[i].size == 2 && r->append.elem[i].data[0] == 0xa1)
            r->leader_at = i;
    const mp_t *entries = &r->append.elem[r->entries_at];
    CU_ASSERT_FATAL(entries->data[0] == 0x91);
    parts_of(&r->entry, entries->data, entries->size, 1);
    CU_ASSERT_FATAL(r->entry.count == 7);
    free(frame);
    frame = encode_ack(1, 9, &size);
    parts_of(&r->ack, frame, size, 0);
    free(frame);
    qkv_vote_t v = {QKV_MSG_VOTE, 1, 3, true, 9, 2, false};
    qkv_encoder_vote(s_enc, &v);
    frame = s_copy_frame(&size);
    parts_of(&r->vote, frame, size, 0);
    free(frame);
    v.type = QKV_MSG_VOTE_ACK;
    v.granted = true;
    qkv_encoder_vote(s_enc, &v);
    frame = s_copy_frame(&size);
    parts_of(&r->vote_ack, frame, size, 0);
    free(frame);
    qkv_encoder_timeout_now(s_enc, 1, 3, 9);
    frame = s_copy_frame(&size);
    parts_of(&r->timeout_now, frame, size, 0);
    free(frame);
}

/* The APPEND with its one entry made of entry parts. */
static void join_with_entry(const refs_t *r, const parts_t *entry, mp_t *m) {
    parts_t top = r->append;
    mp_t one = {0};
    mp_array(&one, 1);
    parts_join(entry, &one);
    parts_set(&top, r->entries_at, one.data, one.size);
    parts_join(&top, m);
}

static int decode_mp(const mp_t *m) {
    return decode_rc(m->data, m->size);
}

static void expect_malformed(const mp_t *m, const char *what, size_t which) {
    int rc = decode_mp(m);
    if (rc != QKV_MALFORMED)
        fprintf(stderr,
                "\n  %s (element %zu): decode gave %d, not "
                "QKV_MALFORMED\n",
                what, which, rc);
    CU_ASSERT_EQUAL(rc, QKV_MALFORMED);
}

/*  ---------------------------------------------------------------------
    Hand-made frames */

static void test_reference_frames_valid(void) {
    refs_t r;
    refs_make(&r);
    mp_t m = {0};
    parts_join(&r.append, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
    m.size = 0;
    join_with_entry(&r, &r.entry, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
    m.size = 0;
    parts_join(&r.ack, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
    m.size = 0;
    parts_join(&r.vote, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
    m.size = 0;
    parts_join(&r.vote_ack, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
    m.size = 0;
    parts_join(&r.timeout_now, &m);
    CU_ASSERT_EQUAL(decode_mp(&m), 0);
}

/* Every integer element re-encoded in each wider msgpack form. */
static void check_wide_ints(const parts_t *p, bool is_entry, const refs_t *r) {
    static const uint8_t widths[][2] = {
        {0xcc, 1}, {0xcd, 2}, {0xce, 4}, {0xcf, 8}};
    for (size_t i = 0; i < p->count; i++) {
        span_t all = {0, p->elem[i].size};
        if (!mp_is_int(p->elem[i].data, all))
            continue;
        uint64_t v = mp_uint_value(p->elem[i].data, all);
        for (size_t w = 0; w < 4; w++) {
            parts_t q = *p;
            mp_t wide = {0};
            mp_byte(&wide, widths[w][0]);
            mp_be(&wide, v, widths[w][1]);
            parts_set(&q, i, wide.data, wide.size);
            mp_t m = {0};
            if (is_entry)
                join_with_entry(r, &q, &m);
            else
                parts_join(&q, &m);
            int rc = decode_mp(&m);
            if (rc != 0)
                fprintf(stderr, "\n  element %zu as 0x%02x: %d\n", i,
                        widths[w][0], rc);
            CU_ASSERT_EQUAL(rc, 0);
        }
    }
}

static void test_any_int_encoding(void) {
    refs_t r;
    refs_make(&r);
    check_wide_ints(&r.append, false, &r);
    check_wide_ints(&r.ack, false, &r);
    check_wide_ints(&r.entry, true, &r);
    /* The values come through: an ACK [2, 1, 300, 5, true, 70000, 0, 0]
       with every integer a uint64. */
    mp_t m = {0};
    mp_array(&m, 8);
    const uint64_t ints[] = {2, 1, 300, 5};
    for (size_t i = 0; i < 4; i++)
        mp_byte(&m, 0xcf), mp_be(&m, ints[i], 8);
    mp_byte(&m, 0xc3);
    mp_byte(&m, 0xcf), mp_be(&m, 70000, 8);
    mp_byte(&m, 0xcf), mp_be(&m, 0, 8);
    mp_byte(&m, 0xcf), mp_be(&m, 0, 8);
    dec_t d;
    dec_run(&d, s_dec, m.data, m.size);
    CU_ASSERT_EQUAL_FATAL(d.rc, 0);
    CU_ASSERT_EQUAL(d.msg->type, QKV_MSG_ACK);
    CU_ASSERT(d.msg->cluster_id == 300);
    CU_ASSERT(d.msg->term == 5);
    CU_ASSERT(d.msg->ok);
    CU_ASSERT(d.msg->index == 70000);
    dec_free(&d);
}

/* Every prefix of frame must be rejected. */
static void check_truncations(const uint8_t *frame, size_t size) {
    for (size_t len = 0; len < size; len++) {
        if (len > 64 && len + 64 < size && len % 997 != 0)
            continue;
        int rc = decode_rc(frame, len);
        if (rc != QKV_MALFORMED)
            fprintf(stderr, "\n  prefix of %zu/%zu bytes gave %d\n", len, size,
                    rc);
        CU_ASSERT_EQUAL(rc, QKV_MALFORMED);
    }
}

static void test_truncations(void) {
    static char big[70000];
    memset(big, 'b', sizeof big);
    spec_t specs[] = {
        {QKV_OP_PUT, 1, "key", 3, "value", 5},
        {QKV_OP_DELETE, 1, "\0k", 2, "", 0},
        {QKV_OP_PUT, UINT64_MAX, big, 300, big, 300},
        {QKV_OP_PUT, 1, "k", 1, big, sizeof big},
    };
    size_t size;
    uint8_t *frame = encode_ack(UINT64_MAX, 12345, &size);
    check_truncations(frame, size);
    free(frame);
    frame = encode_append(UINT64_MAX, UINT64_MAX, 1, NULL, 0, &size);
    check_truncations(frame, size);
    free(frame);
    for (size_t i = 0; i < 4; i++) {
        frame = encode_append(1, 2, 3, &specs[i], 1, &size);
        check_truncations(frame, size);
        free(frame);
    }
    frame = encode_append(1, 2, 3, specs, 3, &size);
    check_truncations(frame, size);
    free(frame);
}

static void test_trailing_bytes(void) {
    spec_t s = {QKV_OP_PUT, 1, "key", 3, "value", 5};
    size_t size, ack_size;
    uint8_t *frame = encode_append(1, 0, 0, &s, 1, &size);
    uint8_t *ack = encode_ack(1, 1, &ack_size);
    uint8_t *buf = malloc(2 * size + ack_size);
    CU_ASSERT_FATAL(buf != NULL);
    const uint8_t tails[] = {0x00, 0xc0, 0x90, 0xff, 0xc1};
    for (size_t i = 0; i < sizeof tails; i++) {
        memcpy(buf, frame, size);
        buf[size] = tails[i];
        CU_ASSERT_EQUAL(decode_rc(buf, size + 1), QKV_MALFORMED);
        memcpy(buf, ack, ack_size);
        buf[ack_size] = tails[i];
        CU_ASSERT_EQUAL(decode_rc(buf, ack_size + 1), QKV_MALFORMED);
    }
    memcpy(buf, frame, size);
    memcpy(buf + size, frame, size);
    CU_ASSERT_EQUAL(decode_rc(buf, 2 * size), QKV_MALFORMED);
    memcpy(buf, ack, ack_size);
    memcpy(buf + ack_size, ack, ack_size);
    CU_ASSERT_EQUAL(decode_rc(buf, 2 * ack_size), QKV_MALFORMED);
    free(buf);
    free(ack);
    free(frame);
}

static void test_wrong_message_types(void) {
    refs_t r;
    refs_make(&r);
    /* fixints 0, 3 (SNAPSHOT's shape differs), 7, 127; uint8 255; negative
       fixints -1 and -32 */
    static const uint8_t bad[][9] = {{1, 0x00}, {1, 0x03},       {1, 0x07},
                                     {1, 0x7f}, {2, 0xcc, 0xff}, {1, 0xff},
                                     {1, 0xe0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parts_t a = r.append, k = r.ack;
        parts_set(&a, 0, bad[i] + 1, bad[i][0]);
        parts_set(&k, 0, bad[i] + 1, bad[i][0]);
        mp_t m = {0};
        parts_join(&a, &m);
        expect_malformed(&m, "APPEND with a wrong type number", i);
        m.size = 0;
        parts_join(&k, &m);
        expect_malformed(&m, "ACK with a wrong type number", i);
    }
    /* Right numbers, wrong shapes: an ACK numbered 1, an APPEND numbered 2.
     */
    parts_t a = r.append, k = r.ack;
    parts_set(&a, 0, "\x02", 1);
    parts_set(&k, 0, "\x01", 1);
    mp_t m = {0};
    parts_join(&a, &m);
    expect_malformed(&m, "APPEND numbered 2", 0);
    m.size = 0;
    parts_join(&k, &m);
    expect_malformed(&m, "ACK numbered 1", 0);
}

/* Replacements for an element, by the type the element should have. */
typedef struct {
    const char *bytes;
    size_t len;
} repl_t;

static const repl_t s_not_int[] = {{"\xa1x", 2},
                                   {"\xc0", 1},
                                   {"\xff", 1},
                                   {"\xd3\x80\0\0\0\0\0\0\0", 9},
                                   {"\xcb\x3f\xf0\0\0\0\0\0\0", 9},
                                   {"\x90", 1},
                                   {"\x80", 1},
                                   {"\xc3", 1},
                                   {"\xc4\x01x", 3},
                                   {NULL, 0}};
static const repl_t s_not_str[] = {{"\x05", 1}, {"\xc0", 1}, {"\x90", 1},
                                   {"\x80", 1}, {"\xc2", 1}, {"\xff", 1},
                                   {NULL, 0}};
static const repl_t s_not_bool[] = {{"\x00", 1},  {"\x01", 1}, {"\xc0", 1},
                                    {"\xa1t", 2}, {"\x90", 1}, {NULL, 0}};
static const repl_t s_not_array[] = {{"\x80", 1},      {"\x00", 1},
                                     {"\xc0", 1},      {"\xa1x", 2},
                                     {"\xc4\x01x", 3}, {NULL, 0}};

static const repl_t *wrong_for(const mp_t *elem) {
    span_t all = {0, elem->size};
    if (mp_is_int(elem->data, all))
        return s_not_int;
    if (mp_is_str(elem->data, all))
        return s_not_str;
    if (mp_is_array(elem->data, all))
        return s_not_array;
    if (mp_is_bool(elem->data, all))
        return s_not_bool;
    return NULL;
}

/* Replaces each element of p in turn with each wrong type. */
static void check_wrong_types(const refs_t *r, const parts_t *p, bool entry,
                              const char *what) {
    for (size_t i = 0; i < p->count; i++) {
        const repl_t *wrong = wrong_for(&p->elem[i]);
        CU_ASSERT_FATAL(wrong != NULL);
        for (size_t w = 0; wrong[w].bytes; w++) {
            parts_t q = *p;
            parts_set(&q, i, wrong[w].bytes, wrong[w].len);
            mp_t m = {0};
            if (entry)
                join_with_entry(r, &q, &m);
            else
                parts_join(&q, &m);
            expect_malformed(&m, what, i);
        }
    }
}

static void test_wrong_field_types(void) {
    refs_t r;
    refs_make(&r);
    check_wrong_types(&r, &r.append, false, "APPEND field of a wrong type");
    check_wrong_types(&r, &r.ack, false, "ACK field of a wrong type");
    check_wrong_types(&r, &r.vote, false, "VOTE field of a wrong type");
    check_wrong_types(&r, &r.vote_ack, false, "VOTE_ACK field of a wrong type");
    check_wrong_types(&r, &r.timeout_now, false,
                      "TIMEOUT_NOW field of a wrong type");
    check_wrong_types(&r, &r.entry, true, "entry field of a wrong type");
    /* The entry itself as something else than an array. */
    for (size_t w = 0; s_not_array[w].bytes; w++) {
        parts_t top = r.append;
        mp_t one = {0};
        mp_array(&one, 1);
        mp_raw(&one, s_not_array[w].bytes, s_not_array[w].len);
        parts_set(&top, r.entries_at, one.data, one.size);
        mp_t m = {0};
        parts_join(&top, &m);
        expect_malformed(&m, "entry of a wrong type", w);
    }
    /* Whole frames of other types. */
    static const repl_t frames[] = {{"\x81\x01\x02", 3},
                                    {"\x01", 1},
                                    {"\xa6"
                                     "append",
                                     7},
                                    {"\xc0", 1},
                                    {"\x90", 1},
                                    {"\x93\x02\x01\xc1", 4},
                                    {"", 0},
                                    {NULL, 0}};
    for (size_t f = 0; frames[f].bytes; f++)
        CU_ASSERT_EQUAL(decode_rc(frames[f].bytes, frames[f].len),
                        QKV_MALFORMED);
}

/* Fewer elements than the layout lists is malformed; more is a newer
   sender's addition and must decode. */
static void check_lengths(const refs_t *r, const parts_t *p, bool entry,
                          const char *what) {
    parts_t shorter = *p, longer = *p, empty = *p;
    /* one element short of what is required (an APPEND's FSYNC, clock and
       hash are optional: the entries are its last required element; so
       are an ACK's echoed clock, a VOTE's hash and transfer flag and a
       VOTE_ACK's hash) */
    shorter.count = p == &r->append        ? r->entries_at
                    : p == &r->ack         ? 7
                    : p == &r->vote        ? 6
                    : p == &r->vote_ack    ? 5
                    : p == &r->timeout_now ? 4
                                           : p->count - 1;
    parts_set(&longer, longer.count++, "\x00", 1);
    parts_set(&longer, longer.count++, "\xa5later", 6);
    empty.count = 0;
    const parts_t *cases[] = {&shorter, &empty};
    for (size_t c = 0; c < 2; c++) {
        mp_t m = {0};
        if (entry)
            join_with_entry(r, cases[c], &m);
        else
            parts_join(cases[c], &m);
        expect_malformed(&m, what, cases[c]->count);
    }
    mp_t m = {0};
    if (entry)
        join_with_entry(r, &longer, &m);
    else
        parts_join(&longer, &m);
    int rc = decode_mp(&m);
    if (rc != 0)
        fprintf(stderr, "\n  %s: 2 elements more gave %d, not 0\n", what, rc);
    CU_ASSERT_EQUAL(rc, 0);
}

/* The version element: 0 is malformed; above QKV_REPL_VERSION is a newer
   node's frame, told apart whatever follows it. */
static void test_versions(void) {
    refs_t r;
    refs_make(&r);
    const parts_t *frames[] = {&r.append, &r.ack};
    for (size_t f = 0; f < 2; f++) {
        parts_t p = *frames[f];
        parts_set(&p, 1, "\x00", 1);
        mp_t m = {0};
        parts_join(&p, &m);
        expect_malformed(&m, "version 0", f);
        parts_set(&p, 1, "\x02", 1);
        m.size = 0;
        parts_join(&p, &m);
        dec_t d;
        dec_run(&d, s_dec, m.data, m.size);
        CU_ASSERT_EQUAL(d.rc, QKV_NEWER);
        CU_ASSERT(d.rc != QKV_NEWER || d.msg->version == 2);
        dec_free(&d);
        /* a version 2 frame may have another layout altogether */
        p.count = 2;
        parts_set(&p, 1, "\xcd\x01\x00", 3);
        m.size = 0;
        parts_join(&p, &m);
        CU_ASSERT_EQUAL(decode_mp(&m), QKV_NEWER);
    }
}

static void test_wrong_array_lengths(void) {
    refs_t r;
    refs_make(&r);
    check_lengths(&r, &r.append, false, "APPEND of a wrong length");
    check_lengths(&r, &r.ack, false, "ACK of a wrong length");
    check_lengths(&r, &r.vote, false, "VOTE of a wrong length");
    check_lengths(&r, &r.vote_ack, false, "VOTE_ACK of a wrong length");
    check_lengths(&r, &r.timeout_now, false, "TIMEOUT_NOW of a wrong length");
    check_lengths(&r, &r.entry, true, "entry of a wrong length");
    /* entries declaring 3 and holding 2 */
    parts_t top = r.append;
    mp_t two = {0};
    mp_array(&two, 3);
    for (int i = 0; i < 2; i++)
        parts_join(&r.entry, &two);
    parts_set(&top, r.entries_at, two.data, two.size);
    mp_t m = {0};
    parts_join(&top, &m);
    expect_malformed(&m, "3 entries declared, 2 present", 0);
}

static void test_unknown_op(void) {
    refs_t r;
    refs_make(&r);
    const char *bad_ops[] = {"\x00", "\x05", "\x7f"};
    for (size_t i = 0; i < 3; i++) {
        parts_t e = r.entry;
        parts_set(&e, 1, bad_ops[i], 1);
        mp_t m = {0};
        join_with_entry(&r, &e, &m);
        expect_malformed(&m, "unknown op", i);
    }
}

/*  ---------------------------------------------------------------------
    The leader's endpoint in APPEND */

static void test_leader_endpoint(void) {
    char longest[QKV_MAX_ENDPOINT + 2];
    memset(longest, 'e', sizeof longest);
    longest[QKV_MAX_ENDPOINT] = '\0';
    const char *leaders[] = {"", "tcp://127.0.0.1:7000", longest};
    spec_t s = {QKV_OP_PUT, 1, "k", 1, "v", 1};
    for (size_t i = 0; i < 3; i++) {
        s_leader = leaders[i];
        size_t size;
        uint8_t *frame = encode_append(1, 0, 0, &s, 1, &size);
        dec_t d;
        dec_run(&d, s_dec, frame, size);
        CU_ASSERT_EQUAL_FATAL(d.rc, 0);
        CU_ASSERT_EQUAL_FATAL(d.msg->leader_len, strlen(leaders[i]));
        CU_ASSERT(d.msg->leader_len == 0 ||
                  memcmp(d.msg->leader, leaders[i], d.msg->leader_len) == 0);
        CU_ASSERT(inside(&d, d.msg->leader, d.msg->leader_len));
        dec_free(&d);
        free(frame);
    }
    s_leader = S_LEADER;
    /* One byte longer than QKV_MAX_ENDPOINT is malformed. */
    refs_t r;
    refs_make(&r);
    CU_ASSERT_FATAL(r.leader_at != 0);
    mp_t str = {0};
    mp_byte(&str, 0xda), mp_be(&str, QKV_MAX_ENDPOINT + 1, 2);
    mp_raw(&str, longest, QKV_MAX_ENDPOINT + 1);
    parts_t top = r.append;
    parts_set(&top, r.leader_at, str.data, str.size);
    mp_t m = {0};
    parts_join(&top, &m);
    expect_malformed(&m, "leader endpoint over QKV_MAX_ENDPOINT", r.leader_at);
}

/*  ---------------------------------------------------------------------
    Hostile lengths and nesting */

#define HOSTILE 50000000u /* 50 million elements or bytes */

/* Decodes a hostile frame; it must fail fast without a big allocation. */
static void check_hostile(const uint8_t *data, size_t size, const char *what) {
    s_largest = 0;
    int64_t start = kit_now_ms();
    s_tracking = 1;
    int rc = decode_rc(data, size);
    s_tracking = 0;
    int64_t elapsed = kit_now_ms() - start;
    if (rc != QKV_MALFORMED || s_largest > 16 * 1024 * 1024 || elapsed > 500)
        fprintf(stderr,
                "\n  %s: rc %d, largest allocation %zu bytes, %lld ms\n", what,
                rc, (size_t)s_largest, (long long)elapsed);
    CU_ASSERT_EQUAL(rc, QKV_MALFORMED);
    CU_ASSERT(s_largest <= 16 * 1024 * 1024);
    CU_ASSERT(elapsed <= 500);
}

static void hostile_head(mp_t *m, uint8_t type) {
    mp_byte(m, type), mp_be(m, HOSTILE, 4);
}

static void test_hostile_lengths(void) {
    /* The 5-byte headers alone: array32, map32, str32, bin32. */
    const uint8_t heads[] = {0xdd, 0xdf, 0xdb, 0xc6};
    for (size_t i = 0; i < sizeof heads; i++) {
        mp_t m = {0};
        hostile_head(&m, heads[i]);
        check_hostile(m.data, m.size, "5-byte header");
        mp_be(&m, 0, 4); /* a few bytes more do not make it true */
        check_hostile(m.data, m.size, "9-byte frame");
    }
    refs_t r;
    refs_make(&r);
    /* Each element of an APPEND, of its entry and of an ACK in turn
       replaced by an array32, map32, str32 and bin32 of 50 million. */
    for (size_t h = 0; h < sizeof heads; h++) {
        mp_t head = {0};
        hostile_head(&head, heads[h]);
        for (size_t i = 0; i < r.append.count; i++) {
            parts_t top = r.append;
            parts_set(&top, i, head.data, head.size);
            mp_t m = {0};
            parts_join(&top, &m);
            check_hostile(m.data, m.size, "APPEND element");
        }
        for (size_t i = 0; i < r.entry.count; i++) {
            parts_t e = r.entry;
            parts_set(&e, i, head.data, head.size);
            mp_t m = {0};
            join_with_entry(&r, &e, &m);
            check_hostile(m.data, m.size, "entry element");
        }
        for (size_t i = 0; i < r.ack.count; i++) {
            parts_t k = r.ack;
            parts_set(&k, i, head.data, head.size);
            mp_t m = {0};
            parts_join(&k, &m);
            check_hostile(m.data, m.size, "ACK element");
        }
    }
    /* A top-level array32 declaring 50 million after real elements. */
    mp_t m = {0};
    hostile_head(&m, 0xdd);
    for (size_t i = 0; i < r.append.count; i++)
        mp_raw(&m, r.append.elem[i].data, r.append.elem[i].size);
    check_hostile(m.data, m.size, "top array32");
}

/* depth levels of [[[...nil]]] (0x91) or {1: {1: ... nil}} (0x81 0x01),
   as the whole frame or as the one entry of an APPEND. */
static void check_nesting(const refs_t *r, uint8_t open, size_t depth,
                          bool in_entries) {
    mp_t head = {0};
    if (in_entries) {
        /* Everything before the entries element, then [ <nest> ]. */
        parts_t top = r->append;
        top.count = r->entries_at;
        parts_join(&top, &head);
        head.data[0] = (uint8_t)(0x90 | r->append.count);
        mp_array(&head, 1);
    }
    uint8_t *buf = malloc(head.size + 2 * depth + 1);
    CU_ASSERT_FATAL(buf != NULL);
    memcpy(buf, head.data, head.size);
    size_t at = head.size;
    for (size_t i = 0; i < depth; i++) {
        buf[at++] = open;
        if (open == 0x81)
            buf[at++] = 0x01;
    }
    buf[at++] = 0xc0;
    check_hostile(buf, at, in_entries ? "deep in entries" : "deep frame");
    free(buf);
}

static void test_deep_nesting(void) {
    refs_t r;
    refs_make(&r);
    const size_t depths[] = {9, 33, 1000, 100000};
    for (size_t i = 0; i < 4; i++) {
        check_nesting(&r, 0x91, depths[i], false);
        check_nesting(&r, 0x91, depths[i], true);
        check_nesting(&r, 0x81, depths[i], false);
        check_nesting(&r, 0x81, depths[i], true);
    }
}

/*  ---------------------------------------------------------------------
    Random frames and mutations: never crash, 0 or QKV_MALFORMED only */

static const qkv_decoder_limits_t s_small_limits = {4096, 64, 256};

static void check_random(qkv_decoder_t *dec, const uint8_t *data, size_t size,
                         int *bad) {
    dec_t d;
    dec_run(&d, dec, data, size);
    if (d.rc != 0 && d.rc != QKV_MALFORMED && d.rc != QKV_NEWER)
        (*bad)++;
    if (d.rc == 0)
        check_sane(&d, &s_small_limits);
    dec_free(&d);
}

static void test_random_frames(void) {
    qkv_decoder_t *dec = qkv_decoder_new(&s_small_limits);
    CU_ASSERT_FATAL(dec != NULL);
    kit_rng_t rng;
    kit_rng_seed(&rng, 20240601);
    uint8_t buf[128];
    int bad = 0;
    const uint8_t prefixes[][2] = {{0x99, 0x01}, {0x98, 0x02}, {0x99, 0x02}};
    for (int i = 0; i < 4000; i++) {
        size_t size = kit_rng_below(&rng, sizeof buf + 1);
        for (size_t b = 0; b < size; b++)
            buf[b] = (uint8_t)kit_rng_next(&rng);
        if (size >= 2 && i % 2 == 0)
            memcpy(buf, prefixes[kit_rng_below(&rng, 3)], 2);
        check_random(dec, buf, size, &bad);
    }
    CU_ASSERT_EQUAL(bad, 0);
    qkv_decoder_destroy(&dec);
}

static size_t mutate(kit_rng_t *rng, uint8_t *buf, size_t size, size_t cap) {
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff,
                                          0xc0, 0xc1, 0xdd, 0xdb, 0xdf,
                                          0xc6, 0xcf, 0x9f, 0xa0, 0xbf};
    size_t at = size ? kit_rng_below(rng, size) : 0;
    switch (kit_rng_below(rng, 5)) {
    case 0: /* flip bits */
        if (size)
            buf[at] ^= (uint8_t)(1u << kit_rng_below(rng, 8));
        break;
    case 1: /* interesting byte */
        if (size)
            buf[at] = interesting[kit_rng_below(rng, sizeof interesting)];
        break;
    case 2: /* truncate */
        return at;
    case 3: /* insert */
        if (size < cap) {
            memmove(buf + at + 1, buf + at, size - at);
            buf[at] = (uint8_t)kit_rng_next(rng);
            return size + 1;
        }
        break;
    default: /* delete */
        if (size) {
            memmove(buf + at, buf + at + 1, size - at - 1);
            return size - 1;
        }
    }
    return size;
}

static void test_random_mutations(void) {
    qkv_decoder_t *dec = qkv_decoder_new(&s_small_limits);
    CU_ASSERT_FATAL(dec != NULL);
    spec_t specs[] = {
        {QKV_OP_PUT, 7, "key-one", 7, "value-one", 9},
        {QKV_OP_DELETE, 7, "key-two", 7, "", 0},
        {QKV_OP_RESET, 7, "", 0, "", 0},
        {QKV_OP_PUT, UINT64_MAX, "\0\1\2", 3, "\xff\xfe", 2},
    };
    size_t sizes[3];
    uint8_t *frames[3];
    frames[0] = encode_append(77, 10, 9, specs, 4, &sizes[0]);
    frames[1] = encode_append(77, UINT64_MAX, 300, NULL, 0, &sizes[1]);
    frames[2] = encode_ack(77, 70000, &sizes[2]);
    kit_rng_t rng;
    kit_rng_seed(&rng, 7);
    uint8_t buf[512];
    int bad = 0;
    for (int i = 0; i < 6000; i++) {
        size_t f = kit_rng_below(&rng, 3);
        CU_ASSERT_FATAL(sizes[f] <= sizeof buf);
        memcpy(buf, frames[f], sizes[f]);
        size_t size = sizes[f];
        int rounds = 1 + (int)kit_rng_below(&rng, 4);
        for (int r = 0; r < rounds; r++)
            size = mutate(&rng, buf, size, sizeof buf);
        check_random(dec, buf, size, &bad);
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int f = 0; f < 3; f++)
        free(frames[f]);
    qkv_decoder_destroy(&dec);
}

/*  ---------------------------------------------------------------------
    Registration */

static int s_init(void) {
    qkv_decoder_limits_t lim = {FRAME_MAX, KEY_MAX, VALUE_MAX};
    s_dec = qkv_decoder_new(&lim);
    s_enc = qkv_encoder_new();
    return s_dec && s_enc ? 0 : -1;
}

static int s_cleanup(void) {
    qkv_decoder_destroy(&s_dec);
    qkv_encoder_destroy(&s_enc);
    return 0;
}

static int s_add_suites(void) {
    static const kit_test_t roundtrips[] = {
        KIT_TEST(test_entry_new),
        KIT_TEST(test_roundtrip_ack),
        KIT_TEST(test_roundtrip_heartbeat),
        KIT_TEST(test_roundtrip_vote),
        KIT_TEST(test_roundtrip_timeout_now),
        KIT_TEST(test_term_bound),
        KIT_TEST(test_roundtrip_clocks),
        KIT_TEST(test_roundtrip_one_entry),
        KIT_TEST(test_roundtrip_binary),
        KIT_TEST(test_roundtrip_many),
        KIT_TEST(test_roundtrip_sizes),
        KIT_TEST(test_decoder_limits_exact),
        KIT_TEST(test_decoder_frame_limit),
        KIT_TEST(test_wire_size_bound),
        KIT_TEST(test_encoder_reuse),
        KIT_TEST(test_decoder_reuse),
        KIT_TEST(test_reference_frames_valid),
        KIT_TEST(test_any_int_encoding),
        KIT_TEST(test_leader_endpoint),
        KIT_TEST(test_documented_example),
        KIT_TESTS_END};
    static const kit_test_t malformed[] = {
        KIT_TEST(test_truncations),         KIT_TEST(test_trailing_bytes),
        KIT_TEST(test_wrong_message_types), KIT_TEST(test_wrong_field_types),
        KIT_TEST(test_wrong_array_lengths), KIT_TEST(test_versions),
        KIT_TEST(test_unknown_op),          KIT_TEST(test_hostile_lengths),
        KIT_TEST(test_deep_nesting),        KIT_TEST(test_random_frames),
        KIT_TEST(test_random_mutations),    KIT_TESTS_END};
    if (!kit_add_suite("proto_roundtrip", s_init, s_cleanup, roundtrips))
        return -1;
    if (!kit_add_suite("proto_malformed", s_init, s_cleanup, malformed))
        return -1;
    return 0;
}

int main(void) {
    s_install_alloc_tracking();
    return kit_run(s_add_suites);
}
