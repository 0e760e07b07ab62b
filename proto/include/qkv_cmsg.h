/*  qkv_cmsg.h - the client protocol: requests from zmq-native clients and
    the answers of a node (proto/PROTOCOL.md, "Client protocol").

    A client DEALER sends one frame holding a msgpack array of requests; the
    node's ROUTER answers with frames holding arrays of results. Each
    request and result is a msgpack map with string keys; every request
    carries an id its result echoes. Results may come in any order and in
    any grouping.

    Decoding is strict at the frame level (one array of maps, nothing
    else); a request whose own fields are wrong still decodes, with op
    QKV_COP_INVALID and a reason, so the node can answer that id with
    bad_request while serving the rest of the frame. Keys and values of
    requests may be msgpack str or bin; everything encoded here is str.
    Decoded strings point into the frame (not NUL-terminated) and are valid
    while the frame lives and until the next call on the same decoder.
*/
#ifndef QKV_CMSG_H
#define QKV_CMSG_H

#include "qkv_msg.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest key and value the protocol carries (a node's own limits may be
   lower: it answers too_large). */
#define QKV_CMSG_MAX_KEY (1u << 20)
#define QKV_CMSG_MAX_VALUE (64u << 20)
/* Most requests or results in one frame. */
#define QKV_CMSG_MAX_BATCH 65536
/* Longest min_index wait a request may ask (wait_ms), and most keys a dump
   chunk may ask (limit): above them the request is bad_request. */
#define QKV_CMSG_MAX_WAIT_MS 60000
#define QKV_CMSG_MAX_DUMP_LIMIT 10000
/* client_id and client_seq are 1 ... QKV_CLIENT_ID_MAX (2^53 - 1, in
   qkv_entry.h), the integers JSON clients carry exactly (REST takes the
   same range). */

typedef enum {
    QKV_COP_INVALID = 0, /* the request's fields are wrong: see reason */
    QKV_COP_PUT,
    QKV_COP_GET,
    QKV_COP_DELETE,
    QKV_COP_RESET,
    QKV_COP_DUMP,
    QKV_COP_HEALTH
} qkv_cop_t;

typedef enum {
    QKV_CS_OK = 0,
    QKV_CS_NOT_FOUND,
    QKV_CS_NOT_LEADER,
    QKV_CS_QUORUM_NOT_REACHED,
    QKV_CS_NOT_READY,
    QKV_CS_BAD_REQUEST,
    QKV_CS_TOO_LARGE,
    QKV_CS_UNAVAILABLE,
    QKV_CS_CONFLICT,             /* the (client_id, client_seq) pair was used
                                    with other content: nothing written */
    QKV_CS_SESSION_EXPIRED,      /* the pair is older than the node's session
                                    memory (or a seq above 1 from an unknown
                                    client): refused, never applied */
    QKV_CS_INSUFFICIENT_STORAGE, /* the node cannot write its log: nothing
                                    written */
    QKV_CS_NO_LEADER,            /* no leader known (an election is under
                                    way): nothing written; retry later */
    QKV_CS_LEADER_CHANGED,       /* the leader stepped down while the write
                                    waited: outcome unknown, retry with the
                                    same pair */
    QKV_CS_OVERLOADED,           /* too many writes in flight on the node
                                    (MAX_PENDING_WRITES): nothing written;
                                    retry shortly */
    QKV_CS_FORBIDDEN,            /* the client's CURVE key lacks the
                                    permission (write) */
    QKV_CS_COUNT
} qkv_cstatus_t;

/* The wire name of a status ("ok", "not_found", ...). */
const char *qkv_cstatus_name(qkv_cstatus_t status);

/* One request. Absent optional fields are 0 / NULL. */
typedef struct {
    uint64_t id;        /* echoed in the result */
    qkv_cop_t op;       /* QKV_COP_INVALID: see reason */
    const char *reason; /* static text when op is invalid */
    const char *key;    /* put, get, delete */
    size_t key_len;
    const char *value; /* put */
    size_t value_len;
    uint64_t client_id;  /* writes: idempotency; 0 = none */
    uint64_t client_seq; /* writes: per client_id, from 1 */
    uint64_t min_index;  /* get, dump: answer once applied this far */
    uint64_t wait_ms;    /* get, dump: how long to wait for min_index */
    uint64_t cursor;     /* dump: where to go on; 0 = from the start */
    uint64_t limit;      /* dump: most keys in this chunk; 0 = default */
} qkv_creq_t;

/* One key of a dump chunk. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    uint64_t seq;
    uint64_t index;
} qkv_citem_t;

/* One follower in a health result. */
typedef struct {
    const char *id;
    size_t id_len;
    const char *endpoint;
    size_t endpoint_len;
    bool connected;
    uint64_t acked_index;
    uint64_t lag;
} qkv_cfollower_t;

/* Health of a node. */
typedef struct {
    const char *role; /* "leader" or "follower" */
    size_t role_len;
    const char *node_id;
    size_t node_id_len;
    const char *replication_id;
    size_t replication_id_len;
    const char *error; /* empty when healthy */
    size_t error_len;
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t applied_index;
    const qkv_cfollower_t *followers; /* leader only */
    size_t follower_count;
    uint64_t max_key_bytes;   /* the node's MAX_KEY_BYTES; 0 = not said */
    uint64_t max_value_bytes; /* the node's MAX_VALUE_BYTES; 0 = not said */
    uint64_t max_frame_bytes; /* largest request frame it takes; 0 = not
                                 said */
} qkv_chealth_t;

/* One result. Which fields are present depends on op and status: see
   PROTOCOL.md; absent ones are 0 / NULL / false. */
typedef struct {
    uint64_t id;
    qkv_cstatus_t status;
    const char *message; /* errors: human text */
    size_t message_len;
    const char *leader; /* not_leader: the leader's client endpoint, or "" */
    size_t leader_len;
    const char *leader_key; /* not_leader with CURVE: the leader's public
                               key (Z85), else NULL */
    size_t leader_key_len;
    bool has_index;
    uint64_t index; /* writes: the entry; get: entry that last wrote it */
    bool has_seq;
    uint64_t seq; /* put and get: the key's seq */
    bool has_deleted;
    bool deleted;    /* delete: whether the key existed */
    const char *key; /* get */
    size_t key_len;
    const char *value; /* get */
    size_t value_len;
    /* dump */
    const qkv_citem_t *items;
    size_t item_count;
    bool has_next;
    uint64_t next;          /* cursor of the next chunk; 0 = finished */
    uint64_t applied_index; /* dump: node's applied index for this chunk */
    /* health */
    const qkv_chealth_t *health;
} qkv_cres_t;

/*  ---------------------------------------------------------------------
    Encoding (with a qkv_encoder_t from qkv_msg.h) */

/* Starts a frame of count requests or results; discards what the encoder
   held. */
void qkv_cenc_begin(qkv_encoder_t *enc, size_t count);
/* Adds the next request (op must not be QKV_COP_INVALID). */
void qkv_cenc_request(qkv_encoder_t *enc, const qkv_creq_t *req);
/* Adds the next result. */
void qkv_cenc_result(qkv_encoder_t *enc, const qkv_cres_t *res);

/* Starts a result frame whose count is not known yet: an array32 header
   (msgpack allows the non-minimal form) with count 0, patched by
   qkv_cenc_end_open. Add results with qkv_cenc_result, then end the frame
   before sending it. Discards what the encoder held. */
void qkv_cenc_begin_open(qkv_encoder_t *enc);
/* Ends a frame begun with qkv_cenc_begin_open: writes count (the results
   added) into its header. Receivers take 1 to QKV_CMSG_MAX_BATCH results
   per frame: send a frame before it holds more, and none with 0. Does
   nothing when the encoder failed (qkv_encoder_data says so). */
void qkv_cenc_end_open(qkv_encoder_t *enc, size_t count);

/*  ---------------------------------------------------------------------
    Decoding (with a qkv_decoder_t from qkv_msg.h; its limits bound the
    frame size; keys and values are bounded by QKV_CMSG_MAX_*) */

/* Decodes a request frame. Returns 0 with *reqs / *count (owned by the
   decoder); -1 when out of memory; QKV_MALFORMED when the frame is not
   one msgpack array of 1 to QKV_CMSG_MAX_BATCH maps each with an unsigned
   "id" other than 0 (id 0 is reserved for frame errors), with *reason
   set to the rule it broke, for the bad_request answer under id 0:

     "frame over N bytes"             (the decoder's max_frame_bytes)
     "not msgpack or trailing bytes"
     "nesting deeper than 8"
     "not an array"
     "empty array"
     "more than 65536 requests"
     "request I is not a map"         (I: its position, from 0)
     "request I has no unsigned id"
     "request I has id 0 (reserved)"

   *reason is NUL-terminated, owned by the decoder and valid until its
   next call (texts with a number live in a buffer of the decoder);
   reason may be NULL. A request whose own fields are wrong does not make
   the frame malformed: it decodes with op QKV_COP_INVALID and a reason
   naming the field (e.g. "wait_ms above 60000", "limit above 10000",
   "client_id must be an integer from 1 to 2^53-1"). */
int qkv_cdec_requests(qkv_decoder_t *dec, const void *data, size_t size,
                      const qkv_creq_t **reqs, size_t *count,
                      const char **reason);

/* Decodes a result frame, likewise (id 0 is allowed: a frame error; keys
   and values may be str or bin). Returns 0, -1 or QKV_MALFORMED; a result
   with an unknown status or a field of the wrong type makes the frame
   malformed. */
int qkv_cdec_results(qkv_decoder_t *dec, const void *data, size_t size,
                     const qkv_cres_t **results, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
