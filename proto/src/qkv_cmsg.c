/*  qkv_cmsg.c - codec of the client protocol (PROTOCOL.md, "Client
    protocol"): arrays of maps with string keys.

    Frames go through the same prescan as replication frames
    (qkv_decoder_unpack), so declared lengths are checked before msgpack-c
    allocates. Map keys are matched by name; unknown keys are skipped so
    that fields can be added later; a known key with the wrong type makes a
    request invalid (answered bad_request) or a result frame malformed.

    A request frame that breaks a frame rule is answered as a whole (one
    bad_request under id 0), so the decoder says which rule: the reason
    is static text, or the decoder's reason buffer when it carries a
    number.
*/
#include "qkv_proto_priv.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define S_TEXT_(x) #x
#define S_TEXT(x) S_TEXT_(x) /* a macro's value as a string literal */

static const char *s_status_names[QKV_CS_COUNT] = {"ok",
                                                   "not_found",
                                                   "not_leader",
                                                   "quorum_not_reached",
                                                   "not_ready",
                                                   "bad_request",
                                                   "too_large",
                                                   "unavailable",
                                                   "conflict",
                                                   "session_expired",
                                                   "insufficient_storage",
                                                   "no_leader",
                                                   "leader_changed",
                                                   "overloaded",
                                                   "forbidden"};

static const char *s_op_names[] = {NULL,    "put",  "get",   "delete",
                                   "reset", "dump", "health"};
#define S_OP_COUNT ((int)(sizeof(s_op_names) / sizeof(s_op_names[0])))

const char *qkv_cstatus_name(qkv_cstatus_t status) {
    return (unsigned)status < QKV_CS_COUNT ? s_status_names[status] : "?";
}

/*  =====================================================================
    Encoding */

static void s_key(qkv_encoder_t *enc, const char *name) {
    qkv_encoder_check(
        enc, msgpack_pack_str_with_body(&enc->packer, name, strlen(name)));
}

static void s_kv_uint(qkv_encoder_t *enc, const char *name, uint64_t v) {
    s_key(enc, name);
    qkv_encoder_check(enc, msgpack_pack_uint64(&enc->packer, v));
}

static void s_kv_str(qkv_encoder_t *enc, const char *name, const char *s,
                     size_t len) {
    s_key(enc, name);
    qkv_encoder_check(
        enc, msgpack_pack_str_with_body(&enc->packer, s ? s : "", s ? len : 0));
}

static void s_kv_bool(qkv_encoder_t *enc, const char *name, bool v) {
    s_key(enc, name);
    qkv_encoder_check(enc, v ? msgpack_pack_true(&enc->packer)
                             : msgpack_pack_false(&enc->packer));
}

void qkv_cenc_begin(qkv_encoder_t *enc, size_t count) {
    qkv_encoder_reset(enc);
    qkv_encoder_check(enc, msgpack_pack_array(&enc->packer, count));
}

void qkv_cenc_begin_open(qkv_encoder_t *enc) {
    static const char header[5] = {(char)0xdd, 0, 0, 0, 0}; /* array32 */
    qkv_encoder_reset(enc);
    qkv_encoder_check(
        enc, msgpack_sbuffer_write(&enc->buffer, header, sizeof header));
}

void qkv_cenc_end_open(qkv_encoder_t *enc, size_t count) {
    if (enc->failed)
        return;
    assert(enc->buffer.size >= 5 && (uint8_t)enc->buffer.data[0] == 0xdd);
    assert(count <= UINT32_MAX);
    for (int i = 0; i < 4; i++)
        enc->buffer.data[1 + i] = (char)(uint8_t)(count >> (24 - 8 * i));
}

void qkv_cenc_request(qkv_encoder_t *enc, const qkv_creq_t *r) {
    bool keyed =
        r->op == QKV_COP_PUT || r->op == QKV_COP_GET || r->op == QKV_COP_DELETE;
    bool write = r->op == QKV_COP_PUT || r->op == QKV_COP_DELETE ||
                 r->op == QKV_COP_RESET;
    bool read = r->op == QKV_COP_GET || r->op == QKV_COP_DUMP;
    size_t n = 2 + keyed + (r->op == QKV_COP_PUT) +
               (write && r->client_id ? 2 : 0) +
               (read && r->min_index ? 2 : 0) + (r->op == QKV_COP_DUMP ? 2 : 0);
    qkv_encoder_check(enc, msgpack_pack_map(&enc->packer, n));
    s_kv_uint(enc, "id", r->id);
    const char *op = r->op > 0 && r->op < S_OP_COUNT ? s_op_names[r->op] : "";
    s_kv_str(enc, "op", op, strlen(op));
    if (keyed)
        s_kv_str(enc, "key", r->key, r->key_len);
    if (r->op == QKV_COP_PUT)
        s_kv_str(enc, "value", r->value, r->value_len);
    if (write && r->client_id) {
        s_kv_uint(enc, "client_id", r->client_id);
        s_kv_uint(enc, "client_seq", r->client_seq);
    }
    if (read && r->min_index) {
        s_kv_uint(enc, "min_index", r->min_index);
        s_kv_uint(enc, "wait_ms", r->wait_ms);
    }
    if (r->op == QKV_COP_DUMP) {
        s_kv_uint(enc, "cursor", r->cursor);
        s_kv_uint(enc, "limit", r->limit);
    }
}

static void s_health(qkv_encoder_t *enc, const qkv_chealth_t *h) {
    msgpack_packer *pk = &enc->packer;
    s_key(enc, "health");
    qkv_encoder_check(enc, msgpack_pack_map(pk, 10 + (h->follower_count > 0)));
    s_kv_str(enc, "role", h->role, h->role_len);
    s_kv_str(enc, "id", h->node_id, h->node_id_len);
    s_kv_str(enc, "replication_id", h->replication_id, h->replication_id_len);
    s_kv_str(enc, "error", h->error, h->error_len);
    s_kv_uint(enc, "last_index", h->last_index);
    s_kv_uint(enc, "commit_index", h->commit_index);
    s_kv_uint(enc, "applied_index", h->applied_index);
    s_kv_uint(enc, "max_key_bytes", h->max_key_bytes);
    s_kv_uint(enc, "max_value_bytes", h->max_value_bytes);
    s_kv_uint(enc, "max_frame_bytes", h->max_frame_bytes);
    if (!h->follower_count)
        return;
    s_key(enc, "followers");
    qkv_encoder_check(enc, msgpack_pack_array(pk, h->follower_count));
    for (size_t i = 0; i < h->follower_count; i++) {
        const qkv_cfollower_t *f = &h->followers[i];
        qkv_encoder_check(enc, msgpack_pack_map(pk, 5));
        s_kv_str(enc, "id", f->id, f->id_len);
        s_kv_str(enc, "endpoint", f->endpoint, f->endpoint_len);
        s_kv_bool(enc, "connected", f->connected);
        s_kv_uint(enc, "acked_index", f->acked_index);
        s_kv_uint(enc, "lag", f->lag);
    }
}

static void s_items(qkv_encoder_t *enc, const qkv_cres_t *r) {
    msgpack_packer *pk = &enc->packer;
    s_key(enc, "items");
    qkv_encoder_check(enc, msgpack_pack_array(pk, r->item_count));
    for (size_t i = 0; i < r->item_count; i++) {
        const qkv_citem_t *it = &r->items[i];
        qkv_encoder_check(enc, msgpack_pack_array(pk, 4));
        qkv_encoder_check(enc,
                          msgpack_pack_str_with_body(pk, it->key, it->key_len));
        qkv_encoder_check(
            enc, msgpack_pack_str_with_body(pk, it->value, it->value_len));
        qkv_encoder_check(enc, msgpack_pack_uint64(pk, it->seq));
        qkv_encoder_check(enc, msgpack_pack_uint64(pk, it->index));
    }
}

void qkv_cenc_result(qkv_encoder_t *enc, const qkv_cres_t *r) {
    size_t n = 2 + (r->message != NULL) + (r->leader != NULL) +
               (r->leader_key != NULL) + r->has_index + r->has_seq +
               r->has_deleted + (r->key != NULL) + (r->value != NULL) +
               (r->items != NULL || r->has_next ? 3 : 0) + (r->health != NULL);
    qkv_encoder_check(enc, msgpack_pack_map(&enc->packer, n));
    s_kv_uint(enc, "id", r->id);
    const char *status = qkv_cstatus_name(r->status);
    s_kv_str(enc, "status", status, strlen(status));
    if (r->message)
        s_kv_str(enc, "message", r->message, r->message_len);
    if (r->leader)
        s_kv_str(enc, "leader", r->leader, r->leader_len);
    if (r->leader_key)
        s_kv_str(enc, "leader_key", r->leader_key, r->leader_key_len);
    if (r->has_index)
        s_kv_uint(enc, "index", r->index);
    if (r->has_seq)
        s_kv_uint(enc, "seq", r->seq);
    if (r->has_deleted)
        s_kv_bool(enc, "deleted", r->deleted);
    if (r->key)
        s_kv_str(enc, "key", r->key, r->key_len);
    if (r->value)
        s_kv_str(enc, "value", r->value, r->value_len);
    if (r->items != NULL || r->has_next) {
        s_items(enc, r);
        s_kv_uint(enc, "next", r->next);
        s_kv_uint(enc, "applied_index", r->applied_index);
    }
    if (r->health)
        s_health(enc, r->health);
}

/*  =====================================================================
    Decoding helpers */

static bool s_is(const msgpack_object *k, const char *name) {
    size_t len = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
           memcmp(k->via.str.ptr, name, len) == 0;
}

static bool s_get_uint(const msgpack_object *o, uint64_t *v) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *v = o->via.u64;
    return true;
}

static bool s_get_str(const msgpack_object *o, size_t max, const char **s,
                      size_t *len) {
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

/* A key or value: msgpack str or bin. */
static bool s_get_bytes(const msgpack_object *o, size_t max, const char **s,
                        size_t *len) {
    if (o->type == MSGPACK_OBJECT_BIN && o->via.bin.size <= max) {
        *s = o->via.bin.ptr;
        *len = o->via.bin.size;
        return true;
    }
    return s_get_str(o, max, s, len);
}

static bool s_get_bool(const msgpack_object *o, bool *v) {
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *v = o->via.boolean;
    return true;
}

/* Finds the unsigned "id" of a map; false when absent or mistyped. */
static bool s_map_id(const msgpack_object *m, uint64_t *id) {
    if (m->type != MSGPACK_OBJECT_MAP)
        return false;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (s_is(&m->via.map.ptr[i].key, "id"))
            return s_get_uint(&m->via.map.ptr[i].val, id);
    return false;
}

/* Unpacks a frame that must be an array of 1..QKV_CMSG_MAX_BATCH maps,
   each with an unsigned "id", not 0 in a request frame. Returns 0 or
   QKV_MALFORMED with *reason set. */
static int s_frame(qkv_decoder_t *dec, const void *data, size_t size,
                   bool requests, msgpack_object *root, const char **reason) {
    const char *what = requests ? "request" : "result";
    if (size > dec->limits.max_frame_bytes) {
        snprintf(dec->reason, sizeof dec->reason, "frame over %zu bytes",
                 dec->limits.max_frame_bytes);
        *reason = dec->reason;
        return QKV_MALFORMED;
    }
    if (qkv_decoder_unpack(dec, data, size, root) != 0) {
        *reason = dec->too_deep ? "nesting deeper than " S_TEXT(QKV_MAX_DEPTH)
                                : "not msgpack or trailing bytes";
        return QKV_MALFORMED;
    }
    *reason = root->type != MSGPACK_OBJECT_ARRAY           ? "not an array"
              : root->via.array.size == 0                  ? "empty array"
              : root->via.array.size <= QKV_CMSG_MAX_BATCH ? NULL
              : requests ? "more than 65536 requests"
                         : "more than 65536 results";
    if (*reason)
        return QKV_MALFORMED;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *m = &root->via.array.ptr[i];
        uint64_t id = 0;
        const char *broke = m->type != MSGPACK_OBJECT_MAP ? "is not a map"
                            : !s_map_id(m, &id)           ? "has no unsigned id"
                            : id == 0 && requests ? "has id 0 (reserved)"
                                                  : NULL;
        if (broke) {
            snprintf(dec->reason, sizeof dec->reason, "%s %u %s", what,
                     (unsigned)i, broke);
            *reason = dec->reason;
            return QKV_MALFORMED;
        }
    }
    return 0;
}

/*  =====================================================================
    Requests */

/* Which optional fields a request carried. */
enum { S_HAS_CLIENT_ID = 1, S_HAS_CLIENT_SEQ = 2 };

/* Reads one field into the request (noting in *has what it saw); returns
   a reason naming the field when it is wrong. */
static const char *s_request_field(qkv_creq_t *r, unsigned *has,
                                   const msgpack_object *k,
                                   const msgpack_object *v) {
    const char *op;
    size_t op_len;
    if (s_is(k, "op")) {
        if (!s_get_str(v, 16, &op, &op_len))
            return "op must be a string";
        for (int i = 1; i < S_OP_COUNT; i++)
            if (strlen(s_op_names[i]) == op_len &&
                memcmp(s_op_names[i], op, op_len) == 0)
                r->op = (qkv_cop_t)i;
        return r->op ? NULL : "unknown op";
    }
    if (s_is(k, "key"))
        return s_get_bytes(v, QKV_CMSG_MAX_KEY, &r->key, &r->key_len)
                   ? NULL
                   : "key must be a str or bin of at most 1 MiB";
    if (s_is(k, "value"))
        return s_get_bytes(v, QKV_CMSG_MAX_VALUE, &r->value, &r->value_len)
                   ? NULL
                   : "value must be a str or bin of at most 64 MiB";
    struct {
        const char *name;
        uint64_t *slot;
        unsigned flag;
        const char *wrong;
    } uints[] = {
        {"id", &r->id, 0, "id must be an unsigned integer"},
        {"client_id", &r->client_id, S_HAS_CLIENT_ID,
         "client_id must be an integer from 1 to 2^53-1"},
        {"client_seq", &r->client_seq, S_HAS_CLIENT_SEQ,
         "client_seq must be an integer from 1 to 2^53-1"},
        {"min_index", &r->min_index, 0,
         "min_index must be an unsigned integer"},
        {"wait_ms", &r->wait_ms, 0, "wait_ms must be an unsigned integer"},
        {"cursor", &r->cursor, 0, "cursor must be an unsigned integer"},
        {"limit", &r->limit, 0, "limit must be an unsigned integer"}};
    for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++)
        if (s_is(k, uints[i].name)) {
            *has |= uints[i].flag;
            return s_get_uint(v, uints[i].slot) ? NULL : uints[i].wrong;
        }
    return NULL; /* unknown keys are ignored */
}

/* Checks the fields an op needs and the ranges of the others; returns a
   reason naming the field, or NULL. */
static const char *s_request_check(const qkv_creq_t *r, unsigned has) {
    if (r->op == QKV_COP_INVALID)
        return "op missing";
    bool keyed =
        r->op == QKV_COP_PUT || r->op == QKV_COP_GET || r->op == QKV_COP_DELETE;
    if (keyed && (!r->key || r->key_len == 0))
        return "key missing or empty";
    if (r->op == QKV_COP_PUT && !r->value)
        return "value missing";
    if ((has & S_HAS_CLIENT_ID) &&
        (r->client_id == 0 || r->client_id > QKV_CLIENT_ID_MAX))
        return "client_id must be an integer from 1 to 2^53-1";
    if ((has & S_HAS_CLIENT_SEQ) &&
        (r->client_seq == 0 || r->client_seq > QKV_CLIENT_ID_MAX))
        return "client_seq must be an integer from 1 to 2^53-1";
    if (has == S_HAS_CLIENT_ID)
        return "client_id without client_seq";
    if (has == S_HAS_CLIENT_SEQ)
        return "client_seq without client_id";
    if (r->wait_ms > QKV_CMSG_MAX_WAIT_MS)
        return "wait_ms above 60000";
    if (r->limit > QKV_CMSG_MAX_DUMP_LIMIT)
        return "limit above 10000";
    return NULL;
}

int qkv_cdec_requests(qkv_decoder_t *dec, const void *data, size_t size,
                      const qkv_creq_t **reqs, size_t *count,
                      const char **reason) {
    msgpack_object root;
    const char *broke = NULL;
    if (reason)
        *reason = NULL;
    if (s_frame(dec, data, size, true, &root, &broke) != 0) {
        if (reason)
            *reason = broke;
        return QKV_MALFORMED;
    }
    size_t n = root.via.array.size;
    qkv_creq_t *out =
        qkv_decoder_scratch(dec, QKV_SCRATCH_REQUESTS, n, sizeof(*out));
    if (!out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *m = &root.via.array.ptr[i];
        qkv_creq_t *r = &out[i];
        memset(r, 0, sizeof(*r));
        const char *wrong = NULL;
        unsigned has = 0;
        for (uint32_t f = 0; f < m->via.map.size && !wrong; f++)
            wrong = s_request_field(r, &has, &m->via.map.ptr[f].key,
                                    &m->via.map.ptr[f].val);
        s_map_id(m, &r->id); /* even when another field was wrong */
        if (!wrong)
            wrong = s_request_check(r, has);
        if (wrong) {
            r->op = QKV_COP_INVALID;
            r->reason = wrong;
        }
    }
    *reqs = out;
    *count = n;
    return 0;
}

/*  =====================================================================
    Results */

/* Where the views of a result frame go: arrays sized for the whole frame
   by a first pass, filled in order. */
typedef struct {
    qkv_decoder_t *dec;
    qkv_citem_t *items; /* every dump item of the frame */
    size_t items_used;
    qkv_chealth_t *healths; /* every health of the frame */
    size_t healths_used;
    qkv_cfollower_t *followers; /* every follower of every health */
    size_t followers_used;
} s_views_t;

static size_t s_array_len(const msgpack_object *v) {
    return v->type == MSGPACK_OBJECT_ARRAY ? v->via.array.size : 0;
}

/* Sizes the view arrays for a frame of result maps. */
static int s_views_init(s_views_t *views, qkv_decoder_t *dec,
                        const msgpack_object *root) {
    size_t items = 0, healths = 0, followers = 0;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *m = &root->via.array.ptr[i];
        for (uint32_t f = 0; f < m->via.map.size; f++) {
            const msgpack_object *k = &m->via.map.ptr[f].key;
            const msgpack_object *v = &m->via.map.ptr[f].val;
            if (s_is(k, "items"))
                items += s_array_len(v);
            if (s_is(k, "health") && v->type == MSGPACK_OBJECT_MAP) {
                healths++;
                for (uint32_t h = 0; h < v->via.map.size; h++)
                    if (s_is(&v->via.map.ptr[h].key, "followers"))
                        followers += s_array_len(&v->via.map.ptr[h].val);
            }
        }
    }
    memset(views, 0, sizeof(*views));
    views->dec = dec;
    views->items =
        qkv_decoder_scratch(dec, QKV_SCRATCH_ITEMS, items, sizeof(qkv_citem_t));
    views->healths = qkv_decoder_scratch(dec, QKV_SCRATCH_HEALTH, healths,
                                         sizeof(qkv_chealth_t));
    views->followers = qkv_decoder_scratch(dec, QKV_SCRATCH_FOLLOWERS,
                                           followers, sizeof(qkv_cfollower_t));
    return views->items && views->healths && views->followers ? 0 : -1;
}

static bool s_items_decode(s_views_t *views, const msgpack_object *v,
                           qkv_cres_t *r) {
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return false;
    size_t n = v->via.array.size;
    qkv_citem_t *items = views->items + views->items_used;
    views->items_used += n;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *a = &v->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 4)
            return false;
        const msgpack_object *f = a->via.array.ptr;
        qkv_citem_t *it = &items[i];
        if (!s_get_bytes(&f[0], QKV_CMSG_MAX_KEY, &it->key, &it->key_len) ||
            !s_get_bytes(&f[1], QKV_CMSG_MAX_VALUE, &it->value,
                         &it->value_len) ||
            !s_get_uint(&f[2], &it->seq) || !s_get_uint(&f[3], &it->index))
            return false;
    }
    r->items = items;
    r->item_count = n;
    return true;
}

static bool s_follower_decode(const msgpack_object *m, qkv_cfollower_t *f) {
    if (m->type != MSGPACK_OBJECT_MAP)
        return false;
    memset(f, 0, sizeof(*f));
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        bool ok = true;
        if (s_is(k, "id"))
            ok = s_get_str(v, 256, &f->id, &f->id_len);
        else if (s_is(k, "endpoint"))
            ok = s_get_str(v, 1024, &f->endpoint, &f->endpoint_len);
        else if (s_is(k, "connected"))
            ok = s_get_bool(v, &f->connected);
        else if (s_is(k, "acked_index"))
            ok = s_get_uint(v, &f->acked_index);
        else if (s_is(k, "lag"))
            ok = s_get_uint(v, &f->lag);
        if (!ok)
            return false;
    }
    return true;
}

static bool s_health_field(s_views_t *views, qkv_chealth_t *h,
                           const msgpack_object *k, const msgpack_object *v) {
    if (s_is(k, "role"))
        return s_get_str(v, 64, &h->role, &h->role_len);
    if (s_is(k, "id"))
        return s_get_str(v, 1024, &h->node_id, &h->node_id_len);
    if (s_is(k, "replication_id"))
        return s_get_str(v, 64, &h->replication_id, &h->replication_id_len);
    if (s_is(k, "error"))
        return s_get_str(v, 4096, &h->error, &h->error_len);
    if (s_is(k, "last_index"))
        return s_get_uint(v, &h->last_index);
    if (s_is(k, "commit_index"))
        return s_get_uint(v, &h->commit_index);
    if (s_is(k, "applied_index"))
        return s_get_uint(v, &h->applied_index);
    if (s_is(k, "max_key_bytes"))
        return s_get_uint(v, &h->max_key_bytes);
    if (s_is(k, "max_value_bytes"))
        return s_get_uint(v, &h->max_value_bytes);
    if (s_is(k, "max_frame_bytes"))
        return s_get_uint(v, &h->max_frame_bytes);
    if (s_is(k, "followers")) {
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > 1024)
            return false;
        size_t n = v->via.array.size;
        qkv_cfollower_t *fs = views->followers + views->followers_used;
        views->followers_used += n;
        for (size_t i = 0; i < n; i++)
            if (!s_follower_decode(&v->via.array.ptr[i], &fs[i]))
                return false;
        h->followers = fs;
        h->follower_count = n;
    }
    return true;
}

static bool s_health_decode(s_views_t *views, const msgpack_object *v,
                            qkv_cres_t *r) {
    if (v->type != MSGPACK_OBJECT_MAP)
        return false;
    qkv_chealth_t *h = &views->healths[views->healths_used++];
    memset(h, 0, sizeof(*h));
    for (uint32_t i = 0; i < v->via.map.size; i++)
        if (!s_health_field(views, h, &v->via.map.ptr[i].key,
                            &v->via.map.ptr[i].val))
            return false;
    r->health = h;
    return true;
}

static bool s_status_decode(const msgpack_object *v, qkv_cstatus_t *status) {
    const char *s;
    size_t len;
    if (!s_get_str(v, 64, &s, &len))
        return false;
    for (int i = 0; i < QKV_CS_COUNT; i++)
        if (strlen(s_status_names[i]) == len &&
            memcmp(s_status_names[i], s, len) == 0) {
            *status = (qkv_cstatus_t)i;
            return true;
        }
    return false;
}

static bool s_result_field(s_views_t *views, qkv_cres_t *r,
                           const msgpack_object *k, const msgpack_object *v) {
    if (s_is(k, "id"))
        return s_get_uint(v, &r->id);
    if (s_is(k, "status"))
        return s_status_decode(v, &r->status);
    if (s_is(k, "message"))
        return s_get_str(v, 65536, &r->message, &r->message_len);
    if (s_is(k, "leader"))
        return s_get_str(v, 1024, &r->leader, &r->leader_len);
    if (s_is(k, "leader_key"))
        return s_get_str(v, 64, &r->leader_key, &r->leader_key_len);
    if (s_is(k, "index"))
        return (r->has_index = s_get_uint(v, &r->index));
    if (s_is(k, "seq"))
        return (r->has_seq = s_get_uint(v, &r->seq));
    if (s_is(k, "deleted"))
        return (r->has_deleted = s_get_bool(v, &r->deleted));
    if (s_is(k, "key"))
        return s_get_bytes(v, QKV_CMSG_MAX_KEY, &r->key, &r->key_len);
    if (s_is(k, "value"))
        return s_get_bytes(v, QKV_CMSG_MAX_VALUE, &r->value, &r->value_len);
    if (s_is(k, "items"))
        return s_items_decode(views, v, r);
    if (s_is(k, "next"))
        return (r->has_next = s_get_uint(v, &r->next));
    if (s_is(k, "applied_index"))
        return s_get_uint(v, &r->applied_index);
    if (s_is(k, "health"))
        return s_health_decode(views, v, r);
    return true; /* unknown keys are ignored */
}

int qkv_cdec_results(qkv_decoder_t *dec, const void *data, size_t size,
                     const qkv_cres_t **results, size_t *count) {
    msgpack_object root;
    const char *broke;
    if (s_frame(dec, data, size, false, &root, &broke) != 0)
        return QKV_MALFORMED;
    size_t n = root.via.array.size;
    qkv_cres_t *out =
        qkv_decoder_scratch(dec, QKV_SCRATCH_RESULTS, n, sizeof(*out));
    s_views_t views;
    if (!out || s_views_init(&views, dec, &root) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *m = &root.via.array.ptr[i];
        qkv_cres_t *r = &out[i];
        memset(r, 0, sizeof(*r));
        r->status = QKV_CS_COUNT;
        for (uint32_t f = 0; f < m->via.map.size; f++)
            if (!s_result_field(&views, r, &m->via.map.ptr[f].key,
                                &m->via.map.ptr[f].val))
                return QKV_MALFORMED;
        if (r->status == QKV_CS_COUNT)
            return QKV_MALFORMED;
    }
    *results = out;
    *count = n;
    return 0;
}
