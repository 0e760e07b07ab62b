/*  test_cmsg.c - the client protocol codec (proto/include/qkv_cmsg.h).

    Round trips of every request op and every result shape (writes, get,
    dump with items, health with followers, errors with leader), unknown
    fields ignored, per-request problems reported as QKV_COP_INVALID with
    the rest of the frame served, and frames rejected as malformed: not an
    array, empty, a map without an unsigned id, wrong field types in
    results, hostile declared lengths, every truncation, random bytes.
*/
#include "kit.h"
#include "qkv_cmsg.h"

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
    CU_ASSERT_EQUAL_FATAL(qkv_cdec_requests(s_dec, frame, size, &out, &n), 0);
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
    if (qkv_cdec_requests(s_dec, data, size, &out, &n) != 0 || n != 1)
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

static void test_request_frames_malformed(void) {
    const qkv_creq_t *out;
    size_t n;
    const uint8_t not_array[] = {0x81, 0xa2, 'i', 'd', 0x01};
    const uint8_t empty[] = {0x90};
    const uint8_t no_id[] = {0x91, 0x81, 0xa2, 'o', 'p', 0xa3, 'g', 'e', 't'};
    const uint8_t neg_id[] = {0x91, 0x81, 0xa2, 'i', 'd', 0xff};
    const uint8_t not_map[] = {0x91, 0x01};
    const uint8_t trailing[] = {0x91, 0x81, 0xa2, 'i', 'd', 0x01, 0xc0};
    /* array32 declaring 50 million elements in 5 bytes */
    const uint8_t hostile[] = {0xdd, 0x02, 0xfa, 0xf0, 0x80};
    /* map32 inside declaring 4 billion pairs */
    const uint8_t hostile_map[] = {0x91, 0xdf, 0xff, 0xff, 0xff, 0xff};
    struct {
        const uint8_t *data;
        size_t size;
    } bad[] = {
        {not_array, sizeof not_array}, {empty, sizeof empty},
        {no_id, sizeof no_id},         {neg_id, sizeof neg_id},
        {not_map, sizeof not_map},     {trailing, sizeof trailing},
        {hostile, sizeof hostile},     {hostile_map, sizeof hostile_map}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(
            qkv_cdec_requests(s_dec, bad[i].data, bad[i].size, &out, &n),
            QKV_MALFORMED);
    /* more than QKV_CMSG_MAX_BATCH requests */
    size_t count = QKV_CMSG_MAX_BATCH + 1;
    qkv_creq_t h = {.op = QKV_COP_HEALTH};
    qkv_cenc_begin(s_enc, count);
    for (size_t i = 0; i < count; i++) {
        h.id = i;
        qkv_cenc_request(s_enc, &h);
    }
    size_t size;
    uint8_t *frame = s_frame(&size);
    CU_ASSERT_EQUAL(qkv_cdec_requests(s_dec, frame, size, &out, &n),
                    QKV_MALFORMED);
    free(frame);
}

/*  ---------------------------------------------------------------------
    Results */

static void test_result_round_trip(void) {
    qkv_citem_t items[2] = {{"k1", 2, "v1", 2, 3, 10}, {"k2", 2, "", 0, 1, 11}};
    qkv_cfollower_t fs[2] = {{"follower1", 9, "tcp://h:1", 9, true, 5, 0},
                             {"follower2", 9, "tcp://h:2", 9, false, 1, 4}};
    qkv_chealth_t health = {"leader", 6, "n", 1, "abc", 3, "",
                            0,        5, 4,   4, fs,    2};
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
    CU_ASSERT_EQUAL(out[5].status, QKV_CS_NOT_LEADER);
    CU_ASSERT(s_eq(out[5].leader, out[5].leader_len, "tcp://l:7000", 12));
    free(frame);
    for (int s = 0; s < QKV_CS_COUNT; s++)
        CU_ASSERT(strcmp(qkv_cstatus_name((qkv_cstatus_t)s), "?") != 0);
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
        CU_ASSERT_EQUAL(qkv_cdec_requests(s_dec, frame, len, &reqs, &n),
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
        int rc = qkv_cdec_requests(s_dec, noise, len, &reqs, &n);
        CU_ASSERT(rc == 0 || rc == QKV_MALFORMED);
        rc = qkv_cdec_results(s_dec, noise, len, &res, &n);
        CU_ASSERT(rc == 0 || rc == QKV_MALFORMED);
    }
    /* mutations of the valid frame */
    for (size_t i = 0; i < size; i++) {
        uint8_t saved = frame[i];
        for (int b = 0; b < 8; b++) {
            frame[i] = saved ^ (uint8_t)(1u << b);
            int rc = qkv_cdec_requests(s_dec, frame, size, &reqs, &n);
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
                                       KIT_TEST(test_result_round_trip),
                                       KIT_TEST(test_result_malformed),
                                       KIT_TEST(test_truncations_and_noise),
                                       KIT_TESTS_END};
    return kit_add_suite("cmsg", s_init, s_fini, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
