/*  fuzz_cmsg.c - libFuzzer target: the client protocol's decoders
    (proto/include/qkv_cmsg.h): qkv_cdec_requests, what a node reads from
    zmq-native clients, and qkv_cdec_results, what libqkv reads from a
    node.

    The first input byte picks the decoder (even: requests, odd:
    results); the rest is the frame. A frame either decodes or is
    malformed (a request frame then names the rule it broke); what
    decodes keeps the protocol's bounds, and goes through the encoder
    (qkv_cenc_*) and a second decode unchanged.

    Seeds: corpus/fuzz_cmsg/ (request and result frames of every op and
    status, from fuzz_seeds); fuzz_cmsg.dict holds the map keys and
    words.
*/
#include "fuzz.h"
#include "qkv_cmsg.h"

#include <string.h>

#define S_MAX_FRAME (1u << 20)

static qkv_decoder_t *s_dec;   /* the decoder under test, reused */
static qkv_decoder_t *s_again; /* decodes the re-encoded frame */
static qkv_encoder_t *s_enc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    qkv_decoder_limits_t limits = {S_MAX_FRAME, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    s_dec = qkv_decoder_new(&limits);
    s_again = qkv_decoder_new(&limits);
    s_enc = qkv_encoder_new();
    FUZZ_CHECK(s_dec && s_again && s_enc);
    return 0;
}

/* A view lies inside the frame (or is empty). */
static bool s_inside(const void *p, size_t len, const uint8_t *data,
                     size_t size) {
    const uint8_t *b = p;
    return len == 0 || (b && b >= data && b + len <= data + size);
}

/* Two optional byte strings are the same (NULL and "" are alike). */
static bool s_same_str(const char *a, size_t alen, const char *b, size_t blen) {
    return alen == blen && fuzz_same(a, b, alen);
}

/*  ---------------------------------------------------------------------
    Requests */

static bool s_keyed(qkv_cop_t op) {
    return op == QKV_COP_PUT || op == QKV_COP_GET || op == QKV_COP_DELETE;
}

static bool s_write(qkv_cop_t op) {
    return op == QKV_COP_PUT || op == QKV_COP_DELETE || op == QKV_COP_RESET;
}

static bool s_read(qkv_cop_t op) {
    return op == QKV_COP_GET || op == QKV_COP_DUMP;
}

/* The fields the encoder sends for a's op are equal in b. */
static void s_same_request(const qkv_creq_t *a, const qkv_creq_t *b) {
    FUZZ_CHECK(a->id == b->id && a->op == b->op);
    if (s_keyed(a->op))
        FUZZ_CHECK(s_same_str(a->key, a->key_len, b->key, b->key_len));
    if (a->op == QKV_COP_PUT)
        FUZZ_CHECK(s_same_str(a->value, a->value_len, b->value, b->value_len));
    if (s_write(a->op))
        FUZZ_CHECK(a->client_id == b->client_id &&
                   a->client_seq == b->client_seq);
    if (s_read(a->op) && a->min_index)
        FUZZ_CHECK(a->min_index == b->min_index && a->wait_ms == b->wait_ms);
    if (a->op == QKV_COP_DUMP)
        FUZZ_CHECK(a->cursor == b->cursor && a->limit == b->limit);
}

static void s_requests(const uint8_t *data, size_t size) {
    const qkv_creq_t *reqs = NULL;
    size_t count = 0;
    const char *reason = NULL;
    int rc = qkv_cdec_requests(s_dec, data, size, &reqs, &count, &reason);
    FUZZ_CHECK(rc == 0 || rc == QKV_MALFORMED || rc == -1);
    if (rc == QKV_MALFORMED)
        FUZZ_CHECK(reason && reason[0] && strlen(reason) < 128);
    if (rc != 0)
        return;
    FUZZ_CHECK(reqs && count >= 1 && count <= QKV_CMSG_MAX_BATCH);
    size_t valid = 0;
    for (size_t i = 0; i < count; i++) {
        const qkv_creq_t *r = &reqs[i];
        FUZZ_CHECK(r->id != 0);
        FUZZ_CHECK(r->op >= QKV_COP_INVALID && r->op <= QKV_COP_HEALTH);
        if (r->op == QKV_COP_INVALID) {
            FUZZ_CHECK(r->reason && r->reason[0]);
            continue;
        }
        valid++;
        FUZZ_CHECK(r->key_len <= QKV_CMSG_MAX_KEY &&
                   r->value_len <= QKV_CMSG_MAX_VALUE);
        FUZZ_CHECK(s_inside(r->key, r->key_len, data, size) &&
                   s_inside(r->value, r->value_len, data, size));
        if (s_keyed(r->op))
            FUZZ_CHECK(r->key && r->key_len > 0);
        if (r->op == QKV_COP_PUT)
            FUZZ_CHECK(r->value != NULL);
        FUZZ_CHECK((r->client_id == 0) == (r->client_seq == 0) &&
                   r->client_id <= QKV_CLIENT_ID_MAX &&
                   r->client_seq <= QKV_CLIENT_ID_MAX);
        FUZZ_CHECK(r->wait_ms <= QKV_CMSG_MAX_WAIT_MS &&
                   r->limit <= QKV_CMSG_MAX_DUMP_LIMIT);
    }
    if (!valid)
        return;
    /* the valid requests, encoded again, decode to the same */
    qkv_cenc_begin(s_enc, valid);
    for (size_t i = 0; i < count; i++)
        if (reqs[i].op != QKV_COP_INVALID)
            qkv_cenc_request(s_enc, &reqs[i]);
    size_t len = 0;
    const void *frame = qkv_encoder_data(s_enc, &len);
    if (!frame)
        return; /* out of memory */
    const qkv_creq_t *again = NULL;
    size_t again_count = 0;
    FUZZ_CHECK(qkv_cdec_requests(s_again, frame, len, &again, &again_count,
                                 NULL) == 0);
    FUZZ_CHECK(again_count == valid);
    size_t j = 0;
    for (size_t i = 0; i < count; i++)
        if (reqs[i].op != QKV_COP_INVALID)
            s_same_request(&reqs[i], &again[j++]);
}

/*  ---------------------------------------------------------------------
    Results */

static void s_same_health(const qkv_chealth_t *a, const qkv_chealth_t *b) {
    FUZZ_CHECK(
        s_same_str(a->role, a->role_len, b->role, b->role_len) &&
        s_same_str(a->node_id, a->node_id_len, b->node_id, b->node_id_len) &&
        s_same_str(a->replication_id, a->replication_id_len, b->replication_id,
                   b->replication_id_len) &&
        s_same_str(a->error, a->error_len, b->error, b->error_len));
    FUZZ_CHECK(a->last_index == b->last_index &&
               a->commit_index == b->commit_index &&
               a->applied_index == b->applied_index &&
               a->max_key_bytes == b->max_key_bytes &&
               a->max_value_bytes == b->max_value_bytes &&
               a->max_frame_bytes == b->max_frame_bytes &&
               a->follower_count == b->follower_count);
    for (size_t i = 0; i < a->follower_count; i++) {
        const qkv_cfollower_t *x = &a->followers[i], *y = &b->followers[i];
        FUZZ_CHECK(s_same_str(x->id, x->id_len, y->id, y->id_len) &&
                   s_same_str(x->endpoint, x->endpoint_len, y->endpoint,
                              y->endpoint_len) &&
                   x->connected == y->connected &&
                   x->acked_index == y->acked_index && x->lag == y->lag);
    }
}

/* What the encoder sends of a is equal in b. */
static void s_same_result(const qkv_cres_t *a, const qkv_cres_t *b) {
    FUZZ_CHECK(a->id == b->id && a->status == b->status);
    FUZZ_CHECK(
        (a->message != NULL) == (b->message != NULL) &&
        s_same_str(a->message, a->message_len, b->message, b->message_len));
    FUZZ_CHECK((a->leader != NULL) == (b->leader != NULL) &&
               s_same_str(a->leader, a->leader_len, b->leader, b->leader_len));
    FUZZ_CHECK(a->has_index == b->has_index &&
               (!a->has_index || a->index == b->index));
    FUZZ_CHECK(a->has_seq == b->has_seq && (!a->has_seq || a->seq == b->seq));
    FUZZ_CHECK(a->has_deleted == b->has_deleted &&
               (!a->has_deleted || a->deleted == b->deleted));
    FUZZ_CHECK((a->key != NULL) == (b->key != NULL) &&
               s_same_str(a->key, a->key_len, b->key, b->key_len));
    FUZZ_CHECK((a->value != NULL) == (b->value != NULL) &&
               s_same_str(a->value, a->value_len, b->value, b->value_len));
    if (a->items || a->has_next) {
        FUZZ_CHECK(b->has_next && b->next == a->next &&
                   b->applied_index == a->applied_index &&
                   a->item_count == b->item_count);
        for (size_t i = 0; i < a->item_count; i++) {
            const qkv_citem_t *x = &a->items[i], *y = &b->items[i];
            FUZZ_CHECK(
                s_same_str(x->key, x->key_len, y->key, y->key_len) &&
                s_same_str(x->value, x->value_len, y->value, y->value_len) &&
                x->seq == y->seq && x->index == y->index);
        }
    }
    FUZZ_CHECK((a->health != NULL) == (b->health != NULL));
    if (a->health)
        s_same_health(a->health, b->health);
}

static void s_results(const uint8_t *data, size_t size) {
    const qkv_cres_t *res = NULL;
    size_t count = 0;
    int rc = qkv_cdec_results(s_dec, data, size, &res, &count);
    FUZZ_CHECK(rc == 0 || rc == QKV_MALFORMED || rc == -1);
    if (rc != 0)
        return;
    FUZZ_CHECK(res && count >= 1 && count <= QKV_CMSG_MAX_BATCH);
    for (size_t i = 0; i < count; i++) {
        const qkv_cres_t *r = &res[i];
        FUZZ_CHECK(r->status >= QKV_CS_OK && r->status < QKV_CS_COUNT);
        FUZZ_CHECK(s_inside(r->key, r->key_len, data, size) &&
                   s_inside(r->value, r->value_len, data, size) &&
                   s_inside(r->message, r->message_len, data, size) &&
                   s_inside(r->leader, r->leader_len, data, size));
        FUZZ_CHECK(r->item_count == 0 || r->items);
        for (size_t k = 0; k < r->item_count; k++)
            FUZZ_CHECK(
                s_inside(r->items[k].key, r->items[k].key_len, data, size) &&
                s_inside(r->items[k].value, r->items[k].value_len, data, size));
        if (r->health)
            FUZZ_CHECK(
                r->health->follower_count <= 1024 &&
                (r->health->follower_count == 0 || r->health->followers));
    }
    qkv_cenc_begin(s_enc, count);
    for (size_t i = 0; i < count; i++)
        qkv_cenc_result(s_enc, &res[i]);
    size_t len = 0;
    const void *frame = qkv_encoder_data(s_enc, &len);
    if (!frame)
        return; /* out of memory */
    const qkv_cres_t *again = NULL;
    size_t again_count = 0;
    FUZZ_CHECK(qkv_cdec_results(s_again, frame, len, &again, &again_count) ==
               0);
    FUZZ_CHECK(again_count == count);
    for (size_t i = 0; i < count; i++)
        s_same_result(&res[i], &again[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    if (data[0] & 1)
        s_results(data + 1, size - 1);
    else
        s_requests(data + 1, size - 1);
    return 0;
}
