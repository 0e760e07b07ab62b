/*  qkv_msg.c - encoder and strict decoder of the replication messages.

    msgpack-c trusts declared lengths: a 5-byte header can announce fifty
    million elements and make msgpack_unpack allocate gigabytes before it
    notices the bytes are missing. So every frame is first walked by
    s_prescan, which checks each declared count against the bytes left and
    bounds the nesting depth; only a frame that is exactly one well-formed
    object reaches msgpack_unpack, whose allocations are then bounded by a
    small multiple of the frame size. The object tree is then checked field
    by field against the message layout (see PROTOCOL.md).
*/
#include "qkv_proto_priv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t qkv_entry_wire_size(const qkv_entry_t *entry) {
    /* array header, term, op, two str32 headers, client_id, client_seq,
       time_ms: every integer at most 9 bytes */
    return 1 + 9 + 1 + 5 + 5 + 9 + 9 + 9 + entry->key_len + entry->value_len;
}

/*  =====================================================================
    Encoder */

qkv_encoder_t *qkv_encoder_new(void) {
    qkv_encoder_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    msgpack_sbuffer_init(&self->buffer);
    msgpack_packer_init(&self->packer, &self->buffer, msgpack_sbuffer_write);
    return self;
}

void qkv_encoder_destroy(qkv_encoder_t **self_p) {
    if (!self_p || !*self_p)
        return;
    msgpack_sbuffer_destroy(&(*self_p)->buffer);
    free(*self_p);
    *self_p = NULL;
}

void qkv_encoder_reset(qkv_encoder_t *self) {
    msgpack_sbuffer_clear(&self->buffer);
    self->failed = false;
}

void qkv_encoder_check(qkv_encoder_t *self, int rc) {
    if (rc != 0)
        self->failed = true;
}

/* What follows an APPEND's entries: FSYNC, then the leader's clock. */
static void s_append_trailer(qkv_encoder_t *self) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_check(self, msgpack_pack_uint8(pk, self->trailer));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, self->sent_us));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, self->cluster_hash));
}

void qkv_encoder_append_begin(qkv_encoder_t *self,
                              const qkv_append_head_t *head,
                              size_t entry_count) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_reset(self);
    qkv_encoder_check(self, msgpack_pack_array(pk, 12));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_MSG_APPEND));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_REPL_VERSION));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, head->cluster_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, head->term));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, head->prev_index));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, head->prev_term));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, head->commit_index));
    qkv_encoder_check(
        self, msgpack_pack_str_with_body(pk, head->leader ? head->leader : "",
                                         head->leader ? head->leader_len : 0));
    qkv_encoder_check(self, msgpack_pack_array(pk, entry_count));
    self->entries_left = entry_count;
    self->trailer = head->fsync;
    self->sent_us = head->sent_us > 0 ? (uint64_t)head->sent_us : 0;
    self->cluster_hash = head->cluster_hash;
    if (entry_count == 0)
        s_append_trailer(self);
}

void qkv_encoder_add_entry(qkv_encoder_t *self, const qkv_entry_t *entry) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_check(self, msgpack_pack_array(pk, 7));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, entry->term));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, entry->op));
    qkv_encoder_check(
        self, msgpack_pack_str_with_body(pk, entry->data, entry->key_len));
    qkv_encoder_check(
        self, msgpack_pack_str_with_body(pk, entry->data + entry->key_len,
                                         entry->value_len));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, entry->client_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, entry->client_seq));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, entry->time_ms));
    if (self->entries_left && --self->entries_left == 0)
        s_append_trailer(self);
}

void qkv_encoder_snapshot(qkv_encoder_t *self, const qkv_snapshot_chunk_t *c) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_reset(self);
    qkv_encoder_check(self, msgpack_pack_array(pk, 9));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_MSG_SNAPSHOT));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_REPL_VERSION));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->cluster_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->term));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->snap_index));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->snap_term));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->offset));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, c->total));
    qkv_encoder_check(self,
                      msgpack_pack_bin_with_body(pk, c->chunk, c->chunk_len));
}

void qkv_encoder_ack(qkv_encoder_t *self, const qkv_ack_t *ack) {

    msgpack_packer *pk = &self->packer;
    qkv_encoder_reset(self);
    qkv_encoder_check(self, msgpack_pack_array(pk, 9));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_MSG_ACK));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_REPL_VERSION));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, ack->cluster_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, ack->term));
    qkv_encoder_check(self,
                      ack->ok ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, ack->index));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, ack->hint_index));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, ack->hint_term));
    qkv_encoder_check(
        self,
        msgpack_pack_uint64(pk, ack->echo_us > 0 ? (uint64_t)ack->echo_us : 0));
}

void qkv_encoder_vote(qkv_encoder_t *self, const qkv_vote_t *v) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_reset(self);
    bool ack = v->type == QKV_MSG_VOTE_ACK;
    qkv_encoder_check(self, msgpack_pack_array(pk, ack ? 7 : 9));
    qkv_encoder_check(
        self, msgpack_pack_uint8(pk, ack ? QKV_MSG_VOTE_ACK : QKV_MSG_VOTE));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_REPL_VERSION));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, v->cluster_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, v->term));
    qkv_encoder_check(self,
                      v->pre ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    if (ack) {
        qkv_encoder_check(self, v->granted ? msgpack_pack_true(pk)
                                           : msgpack_pack_false(pk));
    } else {
        qkv_encoder_check(self, msgpack_pack_uint64(pk, v->last_index));
        qkv_encoder_check(self, msgpack_pack_uint64(pk, v->last_term));
    }
    qkv_encoder_check(self, msgpack_pack_uint64(pk, v->cluster_hash));
    if (!ack)
        qkv_encoder_check(self, v->transfer ? msgpack_pack_true(pk)
                                            : msgpack_pack_false(pk));
}

void qkv_encoder_timeout_now(qkv_encoder_t *self, uint64_t cluster_id,
                             uint64_t term, uint64_t cluster_hash) {
    msgpack_packer *pk = &self->packer;
    qkv_encoder_reset(self);
    qkv_encoder_check(self, msgpack_pack_array(pk, 5));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_MSG_TIMEOUT_NOW));
    qkv_encoder_check(self, msgpack_pack_uint8(pk, QKV_REPL_VERSION));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, cluster_id));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, term));
    qkv_encoder_check(self, msgpack_pack_uint64(pk, cluster_hash));
}

const void *qkv_encoder_data(const qkv_encoder_t *self, size_t *size) {
    if (self->failed) {
        *size = 0;
        return NULL;
    }
    *size = self->buffer.size;
    return self->buffer.data;
}

/*  =====================================================================
    Prescan: structural validation before msgpack-c sees the bytes */

static uint64_t s_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Skips one object starting at p. Returns the byte after it, or NULL when
   the bytes are not one well-formed object within the depth limit (and
   then sets *deep when the depth was what failed). */
static const uint8_t *s_skip(const uint8_t *p, const uint8_t *end, int depth,
                             bool *deep) {
    if (p >= end)
        return NULL;
    if (depth > QKV_MAX_DEPTH) {
        *deep = true;
        return NULL;
    }
    uint8_t c = *p++;
    size_t left = (size_t)(end - p);
    uint64_t n = 0; /* payload bytes, or element count */
    int items = 0;  /* 0 payload, 1 array, 2 map */
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return p;
    if ((c & 0xf0) == 0x80) {
        n = c & 0x0f;
        items = 2;
    } else if ((c & 0xf0) == 0x90) {
        n = c & 0x0f;
        items = 1;
    } else if ((c & 0xe0) == 0xa0) {
        n = c & 0x1f;
    } else {
        int hdr = 0;    /* bytes of length that follow c */
        int fixed = -1; /* payload size when fixed */
        switch (c) {
        case 0xc4:
        case 0xd9:
            hdr = 1;
            break; /* bin8 str8 */
        case 0xc5:
        case 0xda:
            hdr = 2;
            break; /* bin16 str16 */
        case 0xc6:
        case 0xdb:
            hdr = 4;
            break; /* bin32 str32 */
        case 0xc7:
            hdr = 1;
            fixed = -2;
            break; /* ext8 */
        case 0xc8:
            hdr = 2;
            fixed = -2;
            break; /* ext16 */
        case 0xc9:
            hdr = 4;
            fixed = -2;
            break; /* ext32 */
        case 0xca:
            fixed = 4;
            break; /* float32 */
        case 0xcb:
            fixed = 8;
            break; /* float64 */
        case 0xcc:
        case 0xd0:
            fixed = 1;
            break;
        case 0xcd:
        case 0xd1:
            fixed = 2;
            break;
        case 0xce:
        case 0xd2:
            fixed = 4;
            break;
        case 0xcf:
        case 0xd3:
            fixed = 8;
            break;
        case 0xd4:
            fixed = 2;
            break; /* fixext1..16 */
        case 0xd5:
            fixed = 3;
            break;
        case 0xd6:
            fixed = 5;
            break;
        case 0xd7:
            fixed = 9;
            break;
        case 0xd8:
            fixed = 17;
            break;
        case 0xdc:
            hdr = 2;
            items = 1;
            break; /* array16 */
        case 0xdd:
            hdr = 4;
            items = 1;
            break; /* array32 */
        case 0xde:
            hdr = 2;
            items = 2;
            break; /* map16 */
        case 0xdf:
            hdr = 4;
            items = 2;
            break; /* map32 */
        default:
            return NULL; /* 0xc1 */
        }
        if (fixed >= 0 && hdr == 0) {
            n = (uint64_t)fixed;
        } else {
            if (left < (size_t)hdr)
                return NULL;
            n = s_be(p, hdr);
            p += hdr;
            left -= (size_t)hdr;
            if (fixed == -2)
                n += 1; /* ext type byte */
        }
    }
    if (items == 0) {
        if (n > left)
            return NULL;
        return p + n;
    }
    /* each element takes at least one byte: refuse impossible counts */
    if (n > left || (items == 2 && n > left / 2))
        return NULL;
    for (uint64_t i = 0; i < n * (uint64_t)items; i++) {
        p = s_skip(p, end, depth + 1, deep);
        if (!p)
            return NULL;
    }
    return p;
}

/*  =====================================================================
    Decoder */

qkv_decoder_t *qkv_decoder_new(const qkv_decoder_limits_t *limits) {
    qkv_decoder_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->limits = *limits;
    if (!msgpack_zone_init(&self->zone, 64 * 1024)) {
        free(self);
        return NULL;
    }
    return self;
}

void qkv_decoder_destroy(qkv_decoder_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_decoder_t *self = *self_p;
    msgpack_zone_destroy(&self->zone);
    free(self->entries);
    for (int i = 0; i < QKV_SCRATCH_COUNT; i++)
        free(self->scratch[i].data);
    free(self);
    *self_p = NULL;
}

static bool s_uint(const msgpack_object *o, uint64_t *v) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *v = o->via.u64;
    return true;
}

/* A clock reading in microseconds: an unsigned integer up to INT64_MAX. */
static bool s_clock(const msgpack_object *o, int64_t *v) {
    uint64_t u;
    if (!s_uint(o, &u) || u > INT64_MAX)
        return false;
    *v = (int64_t)u;
    return true;
}

static bool s_str(const msgpack_object *o, size_t max, const char **s,
                  uint32_t *len) {
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

/* A term: an unsigned integer up to QKV_TERM_MAX. */
static bool s_term(const msgpack_object *o, uint64_t *out) {
    return s_uint(o, out) && *out <= QKV_TERM_MAX;
}

/* Entries have at least 7 elements; later ones are ignored. */
static bool s_entry(qkv_decoder_t *self, const msgpack_object *o,
                    qkv_entry_view_t *view) {
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 7)
        return false;
    const msgpack_object *f = o->via.array.ptr;
    uint64_t op;
    if (!s_term(&f[0], &view->term) || !s_uint(&f[1], &op) ||
        !s_uint(&f[4], &view->client_id) || !s_uint(&f[5], &view->client_seq) ||
        !s_uint(&f[6], &view->time_ms))
        return false;
    if (op < QKV_OP_PUT || op > QKV_OP_MAX)
        return false;
    view->op = (uint8_t)op;
    return s_str(&f[2], self->limits.max_key_bytes, &view->key,
                 &view->key_len) &&
           s_str(&f[3], self->limits.max_value_bytes, &view->value,
                 &view->value_len);
}

/* f has at least 9 elements. Returns 0, QKV_MALFORMED or -1 (out of
   memory). */
static int s_append(qkv_decoder_t *self, const msgpack_object *f,
                    size_t count) {
    qkv_msg_t *msg = &self->msg;
    uint32_t leader_len;
    if (!s_uint(&f[4], &msg->prev_index) || !s_term(&f[5], &msg->prev_term) ||
        !s_uint(&f[6], &msg->commit_index) ||
        !s_str(&f[7], QKV_MAX_ENDPOINT, &msg->leader, &leader_len) ||
        f[8].type != MSGPACK_OBJECT_ARRAY)
        return QKV_MALFORMED;
    msg->leader_len = leader_len;
    size_t n = f[8].via.array.size;
    if (msg->prev_index > UINT64_MAX - n)
        return QKV_MALFORMED;
    if (n > self->entries_cap) {
        qkv_entry_view_t *grown = realloc(self->entries, n * sizeof(*grown));
        if (!grown)
            return -1;
        self->entries = grown;
        self->entries_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        if (!s_entry(self, &f[8].via.array.ptr[i], &self->entries[i]))
            return QKV_MALFORMED;
    msg->entry_count = n;
    msg->entries = self->entries;
    if (count >= 10) {
        uint64_t fsync;
        if (!s_uint(&f[9], &fsync) || fsync > 2)
            return QKV_MALFORMED;
        msg->has_fsync = true;
        msg->fsync = (uint8_t)fsync;
    }
    if (count >= 11 && !s_clock(&f[10], &msg->sent_us))
        return QKV_MALFORMED;
    if (count >= 12 && !s_uint(&f[11], &msg->cluster_hash))
        return QKV_MALFORMED;
    return 0;
}

/* f has at least 9 elements. */
static int s_snapshot(qkv_decoder_t *self, const msgpack_object *f) {
    qkv_msg_t *msg = &self->msg;
    if (!s_uint(&f[4], &msg->snap_index) || !s_term(&f[5], &msg->snap_term) ||
        !s_uint(&f[6], &msg->offset) || !s_uint(&f[7], &msg->total) ||
        (f[8].type != MSGPACK_OBJECT_BIN && f[8].type != MSGPACK_OBJECT_STR))
        return QKV_MALFORMED;
    msg->chunk = f[8].via.bin.ptr;
    msg->chunk_len = f[8].via.bin.size;
    if (msg->offset > msg->total || msg->chunk_len > msg->total - msg->offset)
        return QKV_MALFORMED;
    return 0;
}

/* f has at least 8 elements. */
static int s_ack(qkv_decoder_t *self, const msgpack_object *f, size_t count) {
    qkv_msg_t *msg = &self->msg;
    if (f[4].type != MSGPACK_OBJECT_BOOLEAN || !s_uint(&f[5], &msg->index) ||
        !s_uint(&f[6], &msg->hint_index) || !s_term(&f[7], &msg->hint_term))
        return QKV_MALFORMED;
    msg->ok = f[4].via.boolean;
    if (count >= 9 && !s_clock(&f[8], &msg->echo_us))
        return QKV_MALFORMED;
    return 0;
}

/* f has at least 6 elements (VOTE_ACK) or 7 (VOTE); the settings hash
   follows, optional. */
static int s_vote(qkv_decoder_t *self, const msgpack_object *f, size_t count) {
    qkv_msg_t *msg = &self->msg;
    if (f[4].type != MSGPACK_OBJECT_BOOLEAN)
        return QKV_MALFORMED;
    msg->pre = f[4].via.boolean;
    size_t hash_at = 6;
    if (msg->type == QKV_MSG_VOTE_ACK) {
        if (f[5].type != MSGPACK_OBJECT_BOOLEAN)
            return QKV_MALFORMED;
        msg->granted = f[5].via.boolean;
    } else {
        if (!s_uint(&f[5], &msg->last_index) || !s_term(&f[6], &msg->last_term))
            return QKV_MALFORMED;
        hash_at = 7;
    }
    if (count > hash_at && !s_uint(&f[hash_at], &msg->cluster_hash))
        return QKV_MALFORMED;
    if (msg->type == QKV_MSG_VOTE && count > hash_at + 1) {
        if (f[hash_at + 1].type != MSGPACK_OBJECT_BOOLEAN)
            return QKV_MALFORMED;
        msg->transfer = f[hash_at + 1].via.boolean;
    }
    return 0;
}

int qkv_decoder_unpack(qkv_decoder_t *self, const void *data, size_t size,
                       msgpack_object *root) {
    const uint8_t *begin = data, *end = begin + size;
    self->too_deep = false;
    if (size == 0 || size > self->limits.max_frame_bytes)
        return QKV_MALFORMED;
    if (s_skip(begin, end, 0, &self->too_deep) != end)
        return QKV_MALFORMED;
    msgpack_zone_clear(&self->zone);
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack(data, size, &off, &self->zone, root);
    /* msgpack-c reports too deep a nesting as NOMEM: any failure here is
       the frame's fault, since the prescan bounded what it may allocate */
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size)
        return QKV_MALFORMED;
    return 0;
}

void *qkv_decoder_scratch(qkv_decoder_t *self, int which, size_t count,
                          size_t size) {
    qkv_scratch_t *sc = &self->scratch[which];
    if (count == 0)
        count = 1;
    if (count > SIZE_MAX / size)
        return NULL;
    if (count * size > sc->bytes) {
        void *data = realloc(sc->data, count * size);
        if (!data)
            return NULL;
        sc->data = data;
        sc->bytes = count * size;
    }
    return sc->data;
}

int qkv_decoder_decode(qkv_decoder_t *self, const void *data, size_t size,
                       const qkv_msg_t **msg_p) {
    msgpack_object root;
    if (qkv_decoder_unpack(self, data, size, &root) != 0)
        return QKV_MALFORMED;
    qkv_msg_t *msg = &self->msg;
    memset(msg, 0, sizeof(*msg));
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size < 2)
        return QKV_MALFORMED;
    const msgpack_object *f = root.via.array.ptr;
    size_t count = root.via.array.size;
    uint64_t type;
    if (!s_uint(&f[0], &type) || !s_uint(&f[1], &msg->version) ||
        msg->version == 0 || type < QKV_MSG_APPEND ||
        type > QKV_MSG_TIMEOUT_NOW)
        return QKV_MALFORMED;
    msg->type = (int)type;
    if (msg->version > QKV_REPL_VERSION) {
        *msg_p = msg;
        return QKV_NEWER;
    }
    int rc = QKV_MALFORMED;
    if (count >= 4 && s_uint(&f[2], &msg->cluster_id) &&
        s_term(&f[3], &msg->term)) {
        if (type == QKV_MSG_APPEND && count >= 9)
            rc = s_append(self, f, count);
        else if (type == QKV_MSG_ACK && count >= 8)
            rc = s_ack(self, f, count);
        else if (type == QKV_MSG_VOTE && count >= 7)
            rc = s_vote(self, f, count);
        else if (type == QKV_MSG_VOTE_ACK && count >= 6)
            rc = s_vote(self, f, count);
        else if (type == QKV_MSG_TIMEOUT_NOW)
            rc = count >= 5 && s_uint(&f[4], &msg->cluster_hash)
                     ? 0
                     : QKV_MALFORMED;
        else if (type == QKV_MSG_SNAPSHOT && count >= 9)
            rc = s_snapshot(self, f);
    }
    if (rc != 0)
        return rc;
    *msg_p = msg;
    return 0;
}
