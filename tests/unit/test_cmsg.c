/*  test_cmsg.c - the client protocol codec (proto/include/qkv_cmsg.h).

    Round trips of every request op and every result shape (writes, get,
    dump with items, health with followers and limits, errors with leader,
    every status), unknown fields ignored, per-request problems reported
    as QKV_COP_INVALID with a reason naming the field and the rest of the
    frame served (ranges of wait_ms, limit, client_id and client_seq; str
    or bin keys and values), frames rejected as malformed with the rule
    they broke (not an array, empty, a map without an unsigned id or with
    id 0, too deep, too big, hostile declared lengths), open frames whose
    count is patched at the end, every truncation, random bytes.
*/
#include "kit.h"
#include "qkv_cmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qkv_encoder_t *s_enc;
static qkv_decoder_t *s_dec;

static int s_init(void) {
    qkv_decoder_limits_t limits = {1u << 26, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    s_enc = qkv_encoder_new();
    s_dec = qkv_decoder_new(&limits);
    return s_enc && s_dec ? 0 : -1;
}

static int s_fini(void) {
    qkv_encoder_destroy(&s_enc);
    qkv_decoder_destroy(&s_dec);
    return 0;
}

/* A malloc'd copy of the encoder's frame. */
static uint8_t *s_frame(size_t *size) {
    const void *data = qkv_encoder_data(s_enc, size);
    CU_ASSERT_FATAL(data != NULL);
    uint8_t *copy = malloc(*size);
    CU_ASSERT_FATAL(copy != NULL);
    memcpy(copy, data, *size);
    return copy;
}

static bool s_eq(const char *a, size_t alen, const char *b, size_t blen) {
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/*  ---------------------------------------------------------------------
    Requests */

static void test_request_round_trip(void) {
    static const char key[] = {'k', 0, 'y'}; /* NUL inside */
    qkv_creq_t in[6] = {
        {.id = 1,
         .op = QKV_COP_PUT,
         .key = key,
         .key_len = 3,
         .value = "",
         .value_len = 0,
         .client_id = 9,
         .client_seq = 4},
        {.id = 2,
         .op = QKV_COP_GET,
         .key = "a",
         .key_len = 1,
         .min_index = 77,
         .wait_ms = 500},
        {.id = 3, .op = QKV_COP_DELETE, .key = "b", .key_len = 1},
        {.id = 4, .op = QKV_COP_RESET, .client_id = 1, .client_seq = 1},
        {.id = 5, .op = QKV_COP_DUMP, .cursor = 1234, .limit = 10},
        {.id = UINT64_MAX, .op = QKV_COP_HEALTH}};
    qkv_cenc_begin(s_enc, 6);
    for (int i = 0; i < 6; i++)
        qkv_cenc_request(s_enc, &in[i]);
    size_t size;
    uint8_t *frame = s_frame(&size);
    const qkv_creq_t *out;
    size_t n;
    const char *reason = "unset";
    CU_ASSERT_EQUAL_FATAL(
        qkv_cdec_requests(s_dec, frame, size, &out, &n, &reason), 0);
    CU_ASSERT(reason == NULL);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT(out[i].id == in[i].id);
        CU_ASSERT_EQUAL(out[i].op, in[i].op);
        CU_ASSERT(s_eq(out[i].key, out[i].key_len, in[i].key, in[i].key_len));
        CU_ASSERT(out[i].client_id == in[i].client_id);
        CU_ASSERT(out[i].client_seq == in[i].client_seq);
        CU_ASSERT(out[i].min_index == in[i].min_index);
        CU_ASSERT(out[i].wait_ms == in[i].wait_ms);
        CU_ASSERT(out[i].cursor == in[i].cursor);
        CU_ASSERT(out[i].limit == in[i].limit);
    }
    CU_ASSERT(out[0].value != NULL && out[0].value_len == 0);
    free(frame);
}

/* Hand-made request frames, msgpack written byte by byte. */
static const qkv_creq_t *s_decode_one(const uint8_t *data, size_t size) {
    const qkv_creq_t *out;
    size_t n;
    if (qkv_cdec_requests(s_dec, data, size, &out, &n, NULL) != 0 || n != 1)
        return NULL;
    return out;
}

static void test_request_invalid_fields(void) {
    /* [{"id": 7, "op": "fly"}]: decodes, op invalid, id kept */
    const uint8_t unknown_op[] = {0x91, 0x82, 0xa2, 'i', 'd', 0x07, 0xa2,
                                  'o',  'p',  0xa3, 'f', 'l', 'y'};
    const qkv_creq_t *r = s_decode_one(unknown_op, sizeof unknown_op);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(r->id == 7);
    CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
    CU_ASSERT(r->reason != NULL);
    /* [{"id": 8, "op": "put", "key": "k"}]: no value */
    const uint8_t no_value[] = {0x91, 0x83, 0xa2, 'i',  'd', 0x08, 0xa2,
                                'o',  'p',  0xa3, 'p',  'u', 't',  0xa3,
                                'k',  'e',  'y',  0xa1, 'k'};
    r = s_decode_one(no_value, sizeof no_value);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
    /* [{"id": 9, "op": "get", "key": 5}]: key not a string */
    const uint8_t int_key[] = {0x91, 0x83, 0xa2, 'i',  'd', 0x09,
                               0xa2, 'o',  'p',  0xa3, 'g', 'e',
                               't',  0xa3, 'k',  'e',  'y', 0x05};
    r = s_decode_one(int_key, sizeof int_key);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(r->id == 9);
    CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
    /* [{"id": 10, "op": "get", "key": ""}]: empty key */
    const uint8_t empty_key[] = {0x91, 0x83, 0xa2, 'i',  'd', 0x0a,
                                 0xa2, 'o',  'p',  0xa3, 'g', 'e',
                                 't',  0xa3, 'k',  'e',  'y', 0xa0};
    r = s_decode_one(empty_key, sizeof empty_key);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
    /* [{"id": 11, "op": "health", "zz": [1]}]: unknown field ignored */
    const uint8_t extra[] = {0x91, 0x83, 0xa2, 'i', 'd', 0x0b, 0xa2,
                             'o',  'p',  0xa6, 'h', 'e', 'a',  'l',
                             't',  'h',  0xa2, 'z', 'z', 0x91, 0x01};
    r = s_decode_one(extra, sizeof extra);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->op, QKV_COP_HEALTH);
    /* client_id without client_seq */
    qkv_creq_t half = {.id = 12,
                       .op = QKV_COP_DELETE,
                       .key = "k",
                       .key_len = 1,
                       .client_id = 3,
                       .client_seq = 0};
    qkv_cenc_begin(s_enc, 1);
    qkv_cenc_request(s_enc, &half);
    size_t size;
    uint8_t *frame = s_frame(&size);
    /* the encoder leaves a zero client_seq out only with client_id 0 */
    r = s_decode_one(frame, size);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
    free(frame);
}

/* Decodes a request frame expecting QKV_MALFORMED with reason want. */
static void s_expect_frame_error(qkv_decoder_t *dec, const uint8_t *data,
                                 size_t size, const char *want) {
    const qkv_creq_t *out;
    size_t n;
    const char *reason = NULL;
    CU_ASSERT_EQUAL(qkv_cdec_requests(dec, data, size, &out, &n, &reason),
                    QKV_MALFORMED);
    KIT_ASSERT_STR(reason, want);
    /* reason may be NULL */
    CU_ASSERT_EQUAL(qkv_cdec_requests(dec, data, size, &out, &n, NULL),
                    QKV_MALFORMED);
}

#define S_MAP_ID(v) 0x81, 0xa2, 'i', 'd', (v) /* {"id": v}, v a fixint */

static void test_request_frames_malformed(void) {
    const uint8_t not_array[] = {S_MAP_ID(0x01)};
    const uint8_t empty[] = {0x90};
    const uint8_t no_id[] = {0x91, 0x81, 0xa2, 'o', 'p', 0xa3, 'g', 'e', 't'};
    const uint8_t neg_id[] = {0x91, S_MAP_ID(0xff)};
    const uint8_t str_id[] = {0x91, 0x81, 0xa2, 'i', 'd', 0xa1, '1'};
    const uint8_t not_map[] = {0x91, 0x01};
    const uint8_t id_zero[] = {0x91, S_MAP_ID(0x00)};
    /* the fourth request breaks the rule: it is named by its position */
    const uint8_t fourth_not_map[] = {0x94, S_MAP_ID(1), S_MAP_ID(2),
                                      S_MAP_ID(3), 0xa0};
    const uint8_t fourth_no_id[] = {0x94, S_MAP_ID(1), S_MAP_ID(2), S_MAP_ID(3),
                                    0x80};
    const uint8_t fourth_id_zero[] = {0x94, S_MAP_ID(1), S_MAP_ID(2),
                                      S_MAP_ID(3), S_MAP_ID(0)};
    /* uint64 id 0 is still 0 */
    const uint8_t wide_zero[] = {0x91, 0x81, 0xa2, 'i', 'd', 0xcf, 0,
                                 0,    0,    0,    0,   0,   0,    0};
    const uint8_t trailing[] = {0x91, S_MAP_ID(0x01), 0xc0};
    const uint8_t reserved_byte[] = {0x91, 0xc1};
    /* array32 declaring 50 million elements in 5 bytes */
    const uint8_t hostile[] = {0xdd, 0x02, 0xfa, 0xf0, 0x80};
    /* map32 inside declaring 4 billion pairs */
    const uint8_t hostile_map[] = {0x91, 0xdf, 0xff, 0xff, 0xff, 0xff};
    /* arrays nested 9 deep around an int at depth 9; 8 deep is legal
       msgpack for the decoder, but not a map */
    const uint8_t deep9[] = {0x91, 0x91, 0x91, 0x91, 0x91,
                             0x91, 0x91, 0x91, 0x91, 0x01};
    const uint8_t deep8[] = {0x91, 0x91, 0x91, 0x91, 0x91,
                             0x91, 0x91, 0x91, 0x01};
    /* too deep inside an otherwise good request */
    const uint8_t deep_field[] = {0x91, 0x82, 0xa2, 'i',  'd',  0x01,
                                  0xa1, 'x',  0x91, 0x91, 0x91, 0x91,
                                  0x91, 0x91, 0x91, 0x91, 0x01};
    struct {
        const uint8_t *data;
        size_t size;
        const char *reason;
    } bad[] = {
        {not_array, sizeof not_array, "not an array"},
        {empty, sizeof empty, "empty array"},
        {no_id, sizeof no_id, "request 0 has no unsigned id"},
        {neg_id, sizeof neg_id, "request 0 has no unsigned id"},
        {str_id, sizeof str_id, "request 0 has no unsigned id"},
        {not_map, sizeof not_map, "request 0 is not a map"},
        {id_zero, sizeof id_zero, "request 0 has id 0 (reserved)"},
        {fourth_not_map, sizeof fourth_not_map, "request 3 is not a map"},
        {fourth_no_id, sizeof fourth_no_id, "request 3 has no unsigned id"},
        {fourth_id_zero, sizeof fourth_id_zero,
         "request 3 has id 0 (reserved)"},
        {wide_zero, sizeof wide_zero, "request 0 has id 0 (reserved)"},
        {trailing, sizeof trailing, "not msgpack or trailing bytes"},
        {reserved_byte, sizeof reserved_byte, "not msgpack or trailing bytes"},
        {hostile, sizeof hostile, "not msgpack or trailing bytes"},
        {hostile_map, sizeof hostile_map, "not msgpack or trailing bytes"},
        {hostile, 0, "not msgpack or trailing bytes"},
        {deep9, sizeof deep9, "nesting deeper than 8"},
        {deep8, sizeof deep8, "request 0 is not a map"},
        {deep_field, sizeof deep_field, "nesting deeper than 8"},
        /* a frame refused before the walk, right after a deep one */
        {hostile, 0, "not msgpack or trailing bytes"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_expect_frame_error(s_dec, bad[i].data, bad[i].size, bad[i].reason);

    /* QKV_CMSG_MAX_BATCH requests are fine, one more is not */
    const qkv_creq_t *out;
    size_t n;
    qkv_creq_t h = {.op = QKV_COP_HEALTH};
    for (size_t count = QKV_CMSG_MAX_BATCH; count <= QKV_CMSG_MAX_BATCH + 1;
         count++) {
        qkv_cenc_begin(s_enc, count);
        for (size_t i = 0; i < count; i++) {
            h.id = i + 1;
            qkv_cenc_request(s_enc, &h);
        }
        size_t size;
        uint8_t *frame = s_frame(&size);
        if (count == QKV_CMSG_MAX_BATCH) {
            CU_ASSERT_EQUAL(
                qkv_cdec_requests(s_dec, frame, size, &out, &n, NULL), 0);
            CU_ASSERT_EQUAL(n, count);
        } else {
            s_expect_frame_error(s_dec, frame, size,
                                 "more than 65536 requests");
        }
        free(frame);
    }

    /* A frame over the decoder's limit, whatever it holds */
    qkv_decoder_limits_t small = {16, QKV_CMSG_MAX_KEY, QKV_CMSG_MAX_VALUE};
    qkv_decoder_t *dec = qkv_decoder_new(&small);
    CU_ASSERT_FATAL(dec != NULL);
    const uint8_t fits[] = {0x92, S_MAP_ID(1), S_MAP_ID(2), 0x90,
                            0x90, 0x90,        0x90,        0x90};
    const uint8_t over[] = {0x92, S_MAP_ID(1), S_MAP_ID(2), 0x90, 0x90,
                            0x90, 0x90,        0x90,        0x90};
    CU_ASSERT_EQUAL(sizeof fits, 16);
    s_expect_frame_error(dec, fits, sizeof fits,
                         "not msgpack or trailing bytes");
    s_expect_frame_error(dec, over, sizeof over, "frame over 16 bytes");
    CU_ASSERT_EQUAL(qkv_cdec_requests(dec, over, 11, &out, &n, NULL), 0);
    qkv_decoder_destroy(&dec);
}

/*  ---------------------------------------------------------------------
    Request fields: hand-made maps of str, bin and uint fields */

typedef struct {
    const char *name; /* NULL ends the list */
    char type;        /* 's' str, 'b' bin, 'u' uint (always 9 bytes) */
    const char *text; /* 's', 'b' */
    uint64_t number;  /* 'u' */
} s_field_t;

typedef struct {
    uint8_t data[512];
    size_t size;
} s_bytes_t;

static void s_byte(s_bytes_t *w, uint8_t c) {
    CU_ASSERT_FATAL(w->size < sizeof w->data);
    w->data[w->size++] = c;
}

static void s_text(s_bytes_t *w, uint8_t bin, const char *text) {
    size_t len = strlen(text);
    CU_ASSERT_FATAL(len < 32);
    if (bin) {
        s_byte(w, 0xc4);
        s_byte(w, (uint8_t)len);
    } else {
        s_byte(w, (uint8_t)(0xa0 | len));
    }
    for (size_t i = 0; i < len; i++)
        s_byte(w, (uint8_t)text[i]);
}

static void s_uint(s_bytes_t *w, uint64_t v) {
    s_byte(w, 0xcf);
    for (int i = 7; i >= 0; i--)
        s_byte(w, (uint8_t)(v >> (8 * i)));
}

/* A frame of one map with fields (a request or a result). */
static void s_map_frame(s_bytes_t *w, const s_field_t *fields) {
    size_t n = 0;
    while (fields[n].name)
        n++;
    w->size = 0;
    s_byte(w, 0x91);
    s_byte(w, (uint8_t)(0x80 | n));
    for (size_t i = 0; i < n; i++) {
        s_text(w, 0, fields[i].name);
        if (fields[i].type == 'u')
            s_uint(w, fields[i].number);
        else
            s_text(w, fields[i].type == 'b', fields[i].text);
    }
}

#define S_ID                                                                   \
    { "id", 'u', NULL, 42 }
#define S_OP(op)                                                               \
    { "op", 's', op, 0 }
#define S_KEY                                                                  \
    { "key", 's', "k", 0 }
#define S_U(name, v)                                                           \
    { name, 'u', NULL, v }
#define S_END                                                                  \
    { NULL, 0, NULL, 0 }

static void test_request_field_rules(void) {
    const uint64_t max = QKV_CLIENT_ID_MAX;
    struct {
        s_field_t fields[8];
        const char *reason; /* NULL: the request is good */
    } cases[] = {
        /* wait_ms and limit: at most 60000 and 10000 */
        {{S_ID, S_OP("get"), S_KEY, S_U("min_index", 5), S_U("wait_ms", 60000),
          S_END},
         NULL},
        {{S_ID, S_OP("get"), S_KEY, S_U("min_index", 5), S_U("wait_ms", 60001),
          S_END},
         "wait_ms above 60000"},
        {{S_ID, S_OP("dump"), S_U("wait_ms", UINT64_MAX), S_END},
         "wait_ms above 60000"},
        {{S_ID, S_OP("dump"), S_U("cursor", 9), S_U("limit", 10000), S_END},
         NULL},
        {{S_ID, S_OP("dump"), S_U("cursor", 9), S_U("limit", 10001), S_END},
         "limit above 10000"},
        {{S_ID, S_OP("dump"), {"limit", 's', "10", 0}, S_END},
         "limit must be an unsigned integer"},
        {{S_ID, S_OP("get"), S_KEY, {"wait_ms", 's', "1", 0}, S_END},
         "wait_ms must be an unsigned integer"},
        /* client_id and client_seq: 1 ... 2^53-1, both or neither */
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", max),
          S_U("client_seq", max), S_END},
         NULL},
        {{S_ID, S_OP("reset"), S_U("client_id", 1), S_U("client_seq", 1),
          S_END},
         NULL},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", max + 1),
          S_U("client_seq", 1), S_END},
         "client_id must be an integer from 1 to 2^53-1"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", 0),
          S_U("client_seq", 1), S_END},
         "client_id must be an integer from 1 to 2^53-1"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", 0),
          S_U("client_seq", 0), S_END},
         "client_id must be an integer from 1 to 2^53-1"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", 7),
          S_U("client_seq", max + 1), S_END},
         "client_seq must be an integer from 1 to 2^53-1"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", 7),
          S_U("client_seq", 0), S_END},
         "client_seq must be an integer from 1 to 2^53-1"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_seq", 3), S_END},
         "client_seq without client_id"},
        {{S_ID, S_OP("delete"), S_KEY, S_U("client_id", 3), S_END},
         "client_id without client_seq"},
        {{S_ID,
          S_OP("delete"),
          S_KEY,
          {"client_id", 's', "3", 0},
          S_U("client_seq", 1),
          S_END},
         "client_id must be an integer from 1 to 2^53-1"},
        /* keys and values: str or bin */
        {{S_ID,
          S_OP("put"),
          {"key", 'b', "bk", 0},
          {"value", 'b', "bv", 0},
          S_END},
         NULL},
        {{S_ID,
          S_OP("put"),
          {"key", 'b', "bk", 0},
          {"value", 's', "sv", 0},
          S_END},
         NULL},
        {{S_ID, S_OP("get"), {"key", 'b', "", 0}, S_END},
         "key missing or empty"},
        {{S_ID, S_OP("put"), S_KEY, S_U("value", 1), S_END},
         "value must be a str or bin of at most 64 MiB"},
        {{S_ID, S_OP("get"), S_U("key", 1), S_END},
         "key must be a str or bin of at most 1 MiB"},
    };
    s_bytes_t w;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_map_frame(&w, cases[i].fields);
        const qkv_creq_t *r = s_decode_one(w.data, w.size);
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT(r->id == 42);
        if (cases[i].reason) {
            CU_ASSERT_EQUAL(r->op, QKV_COP_INVALID);
            KIT_ASSERT_STR(r->reason, cases[i].reason);
        } else {
            CU_ASSERT_NOT_EQUAL(r->op, QKV_COP_INVALID);
            if (r->op == QKV_COP_INVALID)
                fprintf(stderr, "\n  case %zu: %s\n", i, r->reason);
        }
    }
    /* What a bin key and value decode to */
    s_field_t bin[] = {S_ID,
                       S_OP("put"),
                       {"key", 'b', "bk", 0},
                       {"value", 'b', "bv", 0},
                       S_END};
    s_map_frame(&w, bin);
    const qkv_creq_t *r = s_decode_one(w.data, w.size);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->op, QKV_COP_PUT);
    CU_ASSERT(s_eq(r->key, r->key_len, "bk", 2));
    CU_ASSERT(s_eq(r->value, r->value_len, "bv", 2));
    /* A bad request does not spoil the frame: the others are served */
    qkv_creq_t two[2] = {{.id = 1, .op = QKV_COP_DUMP, .limit = 10001},
                         {.id = 2,
                          .op = QKV_COP_GET,
                          .key = "k",
                          .key_len = 1,
                          .min_index = 3,
                          .wait_ms = 60000}};
    qkv_cenc_begin(s_enc, 2);
    qkv_cenc_request(s_enc, &two[0]);
    qkv_cenc_request(s_enc, &two[1]);
    size_t size;
    uint8_t *frame = s_frame(&size);
    const qkv_creq_t *out;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_requests(s_dec, frame, size, &out, &n, NULL),
                          0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL(out[0].op, QKV_COP_INVALID);
    KIT_ASSERT_STR(out[0].reason, "limit above 10000");
    CU_ASSERT_EQUAL(out[1].op, QKV_COP_GET);
    CU_ASSERT(out[1].wait_ms == 60000);
    free(frame);
}

/*  ---------------------------------------------------------------------
    Results */

static void test_result_round_trip(void) {
    qkv_citem_t items[2] = {{"k1", 2, "v1", 2, 3, 10}, {"k2", 2, "", 0, 1, 11}};
    qkv_cfollower_t fs[2] = {{"follower1", 9, "tcp://h:1", 9, true, 5, 0},
                             {"follower2", 9, "tcp://h:2", 9, false, 1, 4}};
    qkv_chealth_t health = {"leader", 6, "n", 1,  "abc", 3,  "",  0,
                            5,        4, 4,   fs, 2,     77, 888, 9999};
    qkv_cres_t in[6];
    memset(in, 0, sizeof in);
    in[0] = (qkv_cres_t){.id = 1,
                         .status = QKV_CS_OK,
                         .has_index = true,
                         .index = 40,
                         .has_seq = true,
                         .seq = 2};
    in[1] = (qkv_cres_t){.id = 2,
                         .status = QKV_CS_OK,
                         .has_index = true,
                         .index = 41,
                         .has_deleted = true,
                         .deleted = true};
    in[2] = (qkv_cres_t){.id = 3,
                         .status = QKV_CS_OK,
                         .key = "k1",
                         .key_len = 2,
                         .value = "v1",
                         .value_len = 2,
                         .has_index = true,
                         .index = 10,
                         .has_seq = true,
                         .seq = 3};
    in[3] = (qkv_cres_t){.id = 4,
                         .status = QKV_CS_OK,
                         .items = items,
                         .item_count = 2,
                         .has_next = true,
                         .next = 0,
                         .applied_index = 41};
    in[4] = (qkv_cres_t){.id = 5, .status = QKV_CS_OK, .health = &health};
    in[5] = (qkv_cres_t){.id = 6,
                         .status = QKV_CS_NOT_LEADER,
                         .message = "go",
                         .message_len = 2,
                         .leader = "tcp://l:7000",
                         .leader_len = 12};
    qkv_cenc_begin(s_enc, 6);
    for (int i = 0; i < 6; i++)
        qkv_cenc_result(s_enc, &in[i]);
    size_t size;
    uint8_t *frame = s_frame(&size);
    const qkv_cres_t *out;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_results(s_dec, frame, size, &out, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    CU_ASSERT(out[0].has_seq && out[0].seq == 2 && out[0].index == 40);
    CU_ASSERT(out[1].has_deleted && out[1].deleted && !out[1].has_seq);
    CU_ASSERT(s_eq(out[2].value, out[2].value_len, "v1", 2));
    CU_ASSERT_EQUAL_FATAL(out[3].item_count, 2);
    CU_ASSERT(s_eq(out[3].items[0].key, out[3].items[0].key_len, "k1", 2));
    CU_ASSERT(out[3].items[0].seq == 3 && out[3].items[1].index == 11);
    CU_ASSERT(out[3].has_next && out[3].next == 0);
    CU_ASSERT(out[3].applied_index == 41);
    CU_ASSERT_FATAL(out[4].health != NULL);
    CU_ASSERT_EQUAL_FATAL(out[4].health->follower_count, 2);
    CU_ASSERT(out[4].health->followers[0].connected);
    CU_ASSERT(!out[4].health->followers[1].connected);
    CU_ASSERT(out[4].health->followers[1].lag == 4);
    CU_ASSERT(s_eq(out[4].health->role, out[4].health->role_len, "leader", 6));
    CU_ASSERT(out[4].health->max_key_bytes == 77);
    CU_ASSERT(out[4].health->max_value_bytes == 888);
    CU_ASSERT(out[4].health->max_frame_bytes == 9999);
    CU_ASSERT_EQUAL(out[5].status, QKV_CS_NOT_LEADER);
    CU_ASSERT(s_eq(out[5].leader, out[5].leader_len, "tcp://l:7000", 12));
    free(frame);
}

/* Every status travels under its wire name; the two newest by name. */
static void test_result_statuses(void) {
    qkv_cres_t in[QKV_CS_COUNT];
    memset(in, 0, sizeof in);
    qkv_cenc_begin(s_enc, QKV_CS_COUNT);
    for (int i = 0; i < QKV_CS_COUNT; i++) {
        in[i].id = (uint64_t)i + 1;
        in[i].status = (qkv_cstatus_t)i;
        in[i].message = i ? "why" : NULL;
        in[i].message_len = i ? 3 : 0;
        qkv_cenc_result(s_enc, &in[i]);
        CU_ASSERT(strcmp(qkv_cstatus_name((qkv_cstatus_t)i), "?") != 0);
    }
    size_t size;
    uint8_t *frame = s_frame(&size);
    const qkv_cres_t *out;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_results(s_dec, frame, size, &out, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, QKV_CS_COUNT);
    for (int i = 0; i < QKV_CS_COUNT; i++) {
        CU_ASSERT_EQUAL(out[i].status, (qkv_cstatus_t)i);
        CU_ASSERT(out[i].id == (uint64_t)i + 1);
    }
    free(frame);
    KIT_ASSERT_STR(qkv_cstatus_name(QKV_CS_CONFLICT), "conflict");
    KIT_ASSERT_STR(qkv_cstatus_name(QKV_CS_SESSION_EXPIRED), "session_expired");
    KIT_ASSERT_STR(qkv_cstatus_name(QKV_CS_COUNT), "?");
    /* the frame error answer: id 0 is fine in a result frame */
    s_field_t frame_error[] = {{"id", 'u', NULL, 0},
                               {"status", 's', "bad_request", 0},
                               {"message", 's', "empty array", 0},
                               S_END};
    s_bytes_t w;
    s_map_frame(&w, frame_error);
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_results(s_dec, w.data, w.size, &out, &n), 0);
    CU_ASSERT(out[0].id == 0 && out[0].status == QKV_CS_BAD_REQUEST);
}

/* Results whose keys and values are bin decode like str. */
static void test_result_bin(void) {
    s_field_t get[] = {S_U("id", 3),
                       {"status", 's', "ok", 0},
                       {"key", 'b', "bk", 0},
                       {"value", 'b', "bv", 0},
                       S_U("index", 4),
                       S_U("seq", 1),
                       S_END};
    s_bytes_t w;
    s_map_frame(&w, get);
    const qkv_cres_t *out;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_results(s_dec, w.data, w.size, &out, &n), 0);
    CU_ASSERT(s_eq(out[0].key, out[0].key_len, "bk", 2));
    CU_ASSERT(s_eq(out[0].value, out[0].value_len, "bv", 2));
    /* [{"id": 1, "status": "ok", "items": [[bin "k", bin "v", 2, 9]],
         "next": 0, "applied_index": 9}] */
    const uint8_t dump[] = {0x91, 0x85, 0xa2, 'i',  'd',  0x01, 0xa6, 's',  't',
                            'a',  't',  'u',  's',  0xa2, 'o',  'k',  0xa5, 'i',
                            't',  'e',  'm',  's',  0x91, 0x94, 0xc4, 0x01, 'k',
                            0xc4, 0x01, 'v',  0x02, 0x09, 0xa4, 'n',  'e',  'x',
                            't',  0x00, 0xad, 'a',  'p',  'p',  'l',  'i',  'e',
                            'd',  '_',  'i',  'n',  'd',  'e',  'x',  0x09};
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_results(s_dec, dump, sizeof dump, &out, &n),
                          0);
    CU_ASSERT_EQUAL_FATAL(out[0].item_count, 1);
    CU_ASSERT(s_eq(out[0].items[0].key, out[0].items[0].key_len, "k", 1));
    CU_ASSERT(s_eq(out[0].items[0].value, out[0].items[0].value_len, "v", 1));
    CU_ASSERT(out[0].items[0].seq == 2 && out[0].items[0].index == 9);
}

/* count ok results with ids 1.. and index 7 * (id - 1). */
static void s_encode_numbered(size_t count) {
    for (size_t i = 0; i < count; i++) {
        qkv_cres_t r = {.id = i + 1,
                        .status = QKV_CS_OK,
                        .has_index = true,
                        .index = i * 7,
                        .has_seq = true,
                        .seq = 1};
        qkv_cenc_result(s_enc, &r);
    }
}

/* Open frames: the count goes into an array32 header at the end. */
static void test_open_frames(void) {
    const size_t counts[] = {0, 1, 2, QKV_CMSG_MAX_BATCH, 70000};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t count = counts[c];
        qkv_cenc_begin_open(s_enc);
        s_encode_numbered(count);
        qkv_cenc_end_open(s_enc, count);
        size_t size;
        uint8_t *frame = s_frame(&size);
        CU_ASSERT_FATAL(size >= 5);
        CU_ASSERT_EQUAL(frame[0], 0xdd);
        CU_ASSERT_EQUAL(((uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 |
                         (uint32_t)frame[3] << 8 | frame[4]),
                        count);
        const qkv_cres_t *out;
        size_t n = 0;
        int rc = qkv_cdec_results(s_dec, frame, size, &out, &n);
        if (count >= 1 && count <= QKV_CMSG_MAX_BATCH) {
            /* a whole round trip */
            CU_ASSERT_EQUAL_FATAL(rc, 0);
            CU_ASSERT_EQUAL_FATAL(n, count);
            for (size_t i = 0; i < count; i++)
                if (out[i].id != i + 1 || out[i].index != i * 7 ||
                    out[i].status != QKV_CS_OK) {
                    CU_FAIL("open frame result differs");
                    break;
                }
        } else {
            /* well-formed msgpack, refused by the frame rules: empty, or
               more than QKV_CMSG_MAX_BATCH */
            CU_ASSERT_EQUAL(rc, QKV_MALFORMED);
        }
        /* and a same frame with a minimal header holds the same bytes */
        if (count <= QKV_CMSG_MAX_BATCH) {
            qkv_cenc_begin(s_enc, count);
            s_encode_numbered(count);
            size_t plain_size;
            const uint8_t *plain = qkv_encoder_data(s_enc, &plain_size);
            size_t plain_header = count < 16 ? 1 : count < 65536 ? 3 : 5;
            CU_ASSERT_FATAL(plain != NULL);
            CU_ASSERT_EQUAL(plain_size - plain_header, size - 5);
            CU_ASSERT(memcmp(plain + plain_header, frame + 5, size - 5) == 0);
        }
        free(frame);
    }
    /* Requests are read through the same prescan: array32 is fine there */
    const uint8_t open_request[] = {0xdd, 0, 0, 0, 1, S_MAP_ID(5)};
    const qkv_creq_t *reqs;
    size_t n;
    CU_ASSERT_EQUAL(qkv_cdec_requests(s_dec, open_request, sizeof open_request,
                                      &reqs, &n, NULL),
                    0);
    CU_ASSERT(n == 1 && reqs[0].id == 5);
}

static void test_result_malformed(void) {
    const qkv_cres_t *out;
    size_t n;
    /* [{"id": 1, "status": "maybe"}]: unknown status */
    const uint8_t unknown[] = {0x91, 0x82, 0xa2, 'i', 'd', 0x01, 0xa6,
                               's',  't',  'a',  't', 'u', 's',  0xa5,
                               'm',  'a',  'y',  'b', 'e'};
    /* [{"id": 1}]: no status */
    const uint8_t no_status[] = {0x91, 0x81, 0xa2, 'i', 'd', 0x01};
    /* [{"id": 1, "status": "ok", "seq": "x"}]: seq not an integer */
    const uint8_t bad_seq[] = {0x91, 0x83, 0xa2, 'i', 'd',  0x01, 0xa6, 's',
                               't',  'a',  't',  'u', 's',  0xa2, 'o',  'k',
                               0xa3, 's',  'e',  'q', 0xa1, 'x'};
    CU_ASSERT_EQUAL(qkv_cdec_results(s_dec, unknown, sizeof unknown, &out, &n),
                    QKV_MALFORMED);
    CU_ASSERT_EQUAL(
        qkv_cdec_results(s_dec, no_status, sizeof no_status, &out, &n),
        QKV_MALFORMED);
    CU_ASSERT_EQUAL(qkv_cdec_results(s_dec, bad_seq, sizeof bad_seq, &out, &n),
                    QKV_MALFORMED);
}

/* Every truncation of a valid frame is malformed; random bytes never
   crash and give 0 or QKV_MALFORMED. */
static void test_truncations_and_noise(void) {
    qkv_creq_t r = {.id = 5,
                    .op = QKV_COP_PUT,
                    .key = "key",
                    .key_len = 3,
                    .value = "value",
                    .value_len = 5,
                    .client_id = 1,
                    .client_seq = 2};
    qkv_cenc_begin(s_enc, 1);
    qkv_cenc_request(s_enc, &r);
    size_t size;
    uint8_t *frame = s_frame(&size);
    const qkv_creq_t *reqs;
    const qkv_cres_t *res;
    size_t n;
    for (size_t len = 0; len < size; len++)
        CU_ASSERT_EQUAL(qkv_cdec_requests(s_dec, frame, len, &reqs, &n, NULL),
                        QKV_MALFORMED);
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    uint8_t noise[64];
    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + round % sizeof noise;
        for (size_t i = 0; i < len; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            noise[i] = (uint8_t)seed;
        }
        if (round % 2)
            noise[0] = 0x91; /* mostly arrays of one */
        const char *reason = NULL;
        int rc = qkv_cdec_requests(s_dec, noise, len, &reqs, &n, &reason);
        CU_ASSERT(rc == 0 || rc == QKV_MALFORMED);
        CU_ASSERT((rc == 0) == (reason == NULL));
        rc = qkv_cdec_results(s_dec, noise, len, &res, &n);
        CU_ASSERT(rc == 0 || rc == QKV_MALFORMED);
    }
    /* mutations of the valid frame */
    for (size_t i = 0; i < size; i++) {
        uint8_t saved = frame[i];
        for (int b = 0; b < 8; b++) {
            frame[i] = saved ^ (uint8_t)(1u << b);
            int rc = qkv_cdec_requests(s_dec, frame, size, &reqs, &n, NULL);
            CU_ASSERT(rc == 0 || rc == QKV_MALFORMED);
        }
        frame[i] = saved;
    }
    free(frame);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_request_round_trip),
                                       KIT_TEST(test_request_invalid_fields),
                                       KIT_TEST(test_request_frames_malformed),
                                       KIT_TEST(test_request_field_rules),
                                       KIT_TEST(test_result_round_trip),
                                       KIT_TEST(test_result_statuses),
                                       KIT_TEST(test_result_bin),
                                       KIT_TEST(test_open_frames),
                                       KIT_TEST(test_result_malformed),
                                       KIT_TEST(test_truncations_and_noise),
                                       KIT_TESTS_END};
    return kit_add_suite("cmsg", s_init, s_fini, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
