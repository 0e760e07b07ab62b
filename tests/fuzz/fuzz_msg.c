/*  fuzz_msg.c - libFuzzer target: the replication frame decoder
    (proto/include/qkv_msg.h, qkv_decoder_decode).

    The input is one frame from a peer. Whatever it holds, the decoder
    must answer 0, QKV_NEWER or QKV_MALFORMED without touching memory
    outside it; what it accepts must be within the limits, and must come
    back the same through the encoder (qkv_encoder_*) and a second
    decode: the decoder takes nothing the encoder cannot say.

    Seeds: corpus/fuzz_msg/ (one frame of each type, from fuzz_seeds).
*/
#include "fuzz.h"
#include "qkv_msg.h"

#include <stdlib.h>
#include <string.h>

#define S_MAX_KEY 64
#define S_MAX_VALUE 1024
#define S_MAX_FRAME (1u << 20)

static qkv_decoder_t *s_dec;   /* the decoder under test, reused */
static qkv_decoder_t *s_again; /* decodes the re-encoded frame */
static qkv_encoder_t *s_enc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    qkv_decoder_limits_t limits = {S_MAX_FRAME, S_MAX_KEY, S_MAX_VALUE};
    s_dec = qkv_decoder_new(&limits);
    s_again = qkv_decoder_new(&limits);
    s_enc = qkv_encoder_new();
    FUZZ_CHECK(s_dec && s_again && s_enc);
    return 0;
}

/* Encodes m as the encoder would send it; false when out of memory. */
static bool s_encode(const qkv_msg_t *m) {
    switch (m->type) {
    case QKV_MSG_APPEND: {
        qkv_append_head_t head = {.cluster_id = m->cluster_id,
                                  .term = m->term,
                                  .prev_index = m->prev_index,
                                  .prev_term = m->prev_term,
                                  .commit_index = m->commit_index,
                                  .leader = m->leader,
                                  .leader_len = m->leader_len,
                                  .fsync = m->fsync,
                                  .sent_us = m->sent_us,
                                  .cluster_hash = m->cluster_hash};
        qkv_encoder_append_begin(s_enc, &head, m->entry_count);
        for (size_t i = 0; i < m->entry_count; i++) {
            const qkv_entry_view_t *v = &m->entries[i];
            qkv_entry_t *e = qkv_entry_new((qkv_op_t)v->op, v->key, v->key_len,
                                           v->value, v->value_len);
            if (!e)
                return false;
            e->term = v->term;
            e->client_id = v->client_id;
            e->client_seq = v->client_seq;
            e->time_ms = v->time_ms;
            qkv_encoder_add_entry(s_enc, e);
            free(e);
        }
        break;
    }
    case QKV_MSG_ACK: {
        qkv_ack_t ack = {.cluster_id = m->cluster_id,
                         .term = m->term,
                         .ok = m->ok,
                         .index = m->index,
                         .hint_index = m->hint_index,
                         .hint_term = m->hint_term,
                         .echo_us = m->echo_us};
        qkv_encoder_ack(s_enc, &ack);
        break;
    }
    case QKV_MSG_VOTE:
    case QKV_MSG_VOTE_ACK: {
        qkv_vote_t vote = {.type = m->type,
                           .cluster_id = m->cluster_id,
                           .term = m->term,
                           .pre = m->pre,
                           .last_index = m->last_index,
                           .last_term = m->last_term,
                           .granted = m->granted,
                           .cluster_hash = m->cluster_hash,
                           .transfer = m->transfer};
        qkv_encoder_vote(s_enc, &vote);
        break;
    }
    case QKV_MSG_TIMEOUT_NOW:
        qkv_encoder_timeout_now(s_enc, m->cluster_id, m->term, m->cluster_hash);
        break;
    case QKV_MSG_SNAPSHOT: {
        qkv_snapshot_chunk_t c = {.cluster_id = m->cluster_id,
                                  .term = m->term,
                                  .snap_index = m->snap_index,
                                  .snap_term = m->snap_term,
                                  .offset = m->offset,
                                  .total = m->total,
                                  .chunk = m->chunk,
                                  .chunk_len = m->chunk_len};
        qkv_encoder_snapshot(s_enc, &c);
        break;
    }
    default:
        FUZZ_CHECK(!"a decoded message of an unknown type");
    }
    return true;
}

static bool s_same_entry(const qkv_entry_view_t *a, const qkv_entry_view_t *b) {
    return a->term == b->term && a->client_id == b->client_id &&
           a->client_seq == b->client_seq && a->time_ms == b->time_ms &&
           a->op == b->op && a->key_len == b->key_len &&
           a->value_len == b->value_len &&
           fuzz_same(a->key, b->key, a->key_len) &&
           fuzz_same(a->value, b->value, a->value_len);
}

/* The fields of type a carries are equal in b. */
static void s_check_same(const qkv_msg_t *a, const qkv_msg_t *b) {
    FUZZ_CHECK(a->type == b->type && a->cluster_id == b->cluster_id &&
               a->term == b->term && b->version == QKV_REPL_VERSION);
    switch (a->type) {
    case QKV_MSG_APPEND:
        FUZZ_CHECK(
            a->prev_index == b->prev_index && a->prev_term == b->prev_term &&
            a->commit_index == b->commit_index &&
            a->leader_len == b->leader_len &&
            fuzz_same(a->leader, b->leader, a->leader_len) &&
            a->sent_us == b->sent_us && a->cluster_hash == b->cluster_hash &&
            (!a->has_fsync || a->fsync == b->fsync) &&
            a->entry_count == b->entry_count);
        for (size_t i = 0; i < a->entry_count; i++)
            FUZZ_CHECK(s_same_entry(&a->entries[i], &b->entries[i]));
        break;
    case QKV_MSG_ACK:
        FUZZ_CHECK(a->ok == b->ok && a->index == b->index &&
                   a->hint_index == b->hint_index &&
                   a->hint_term == b->hint_term && a->echo_us == b->echo_us);
        break;
    case QKV_MSG_VOTE:
        FUZZ_CHECK(a->pre == b->pre && a->last_index == b->last_index &&
                   a->last_term == b->last_term &&
                   a->cluster_hash == b->cluster_hash &&
                   a->transfer == b->transfer);
        break;
    case QKV_MSG_VOTE_ACK:
        FUZZ_CHECK(a->pre == b->pre && a->granted == b->granted &&
                   a->cluster_hash == b->cluster_hash);
        break;
    case QKV_MSG_TIMEOUT_NOW:
        FUZZ_CHECK(a->cluster_hash == b->cluster_hash);
        break;
    case QKV_MSG_SNAPSHOT:
        FUZZ_CHECK(a->snap_index == b->snap_index &&
                   a->snap_term == b->snap_term && a->offset == b->offset &&
                   a->total == b->total && a->chunk_len == b->chunk_len &&
                   fuzz_same(a->chunk, b->chunk, a->chunk_len));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const qkv_msg_t *msg = NULL;
    int rc = qkv_decoder_decode(s_dec, data, size, &msg);
    FUZZ_CHECK(rc == 0 || rc == QKV_NEWER || rc == QKV_MALFORMED);
    if (rc == QKV_NEWER)
        FUZZ_CHECK(msg && msg->version > QKV_REPL_VERSION);
    if (rc != 0)
        return 0;
    FUZZ_CHECK(msg && msg->version >= 1 && msg->version <= QKV_REPL_VERSION);
    FUZZ_CHECK(msg->leader_len <= QKV_MAX_ENDPOINT);
    if (msg->type == QKV_MSG_APPEND) {
        FUZZ_CHECK(msg->entry_count == 0 || msg->entries);
        FUZZ_CHECK(msg->prev_index + msg->entry_count >= msg->prev_index);
        FUZZ_CHECK(!msg->has_fsync || msg->fsync <= 2);
        for (size_t i = 0; i < msg->entry_count; i++) {
            const qkv_entry_view_t *e = &msg->entries[i];
            FUZZ_CHECK(e->key_len <= S_MAX_KEY && e->value_len <= S_MAX_VALUE);
            FUZZ_CHECK(e->op >= QKV_OP_PUT && e->op <= QKV_OP_MAX);
            /* the views lie inside the frame */
            FUZZ_CHECK(e->key_len == 0 ||
                       ((const uint8_t *)e->key >= data &&
                        (const uint8_t *)e->key + e->key_len <= data + size));
            FUZZ_CHECK(
                e->value_len == 0 ||
                ((const uint8_t *)e->value >= data &&
                 (const uint8_t *)e->value + e->value_len <= data + size));
        }
    }
    if (msg->type == QKV_MSG_SNAPSHOT)
        FUZZ_CHECK(msg->offset <= msg->total &&
                   msg->chunk_len <= msg->total - msg->offset);
    FUZZ_CHECK(msg->sent_us >= 0 && msg->echo_us >= 0);

    /* the round trip */
    if (!s_encode(msg))
        return 0;
    size_t len = 0;
    const void *frame = qkv_encoder_data(s_enc, &len);
    if (!frame)
        return 0; /* out of memory */
    const qkv_msg_t *again = NULL;
    FUZZ_CHECK(qkv_decoder_decode(s_again, frame, len, &again) == 0);
    s_check_same(msg, again);
    return 0;
}
