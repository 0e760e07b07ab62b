/*  qkv_msg.h - the replication wire format (leader <-> followers).

    Two messages travel on a replication link, each one msgpack array in one
    ZeroMQ frame (proto/PROTOCOL.md is the reference):

      APPEND    [1, repl_id, prev_index, commit_index, leader, entries]
                leader = the leader's client endpoint (str, may be empty);
                entries = [[term, op, key, value], ...]; entry i has index
                prev_index + 1 + i. No entries = HEARTBEAT.
      ACK       [2, repl_id, last_index]

    Decoding is strict: a frame must be exactly one well-formed message of a
    known type with every field of the right type and within the limits given
    to the decoder, or it is rejected as malformed. Decoded keys and values
    point into the caller's frame (not NUL-terminated) and stay valid only as
    long as that frame and the next call on the same decoder.
*/
#ifndef QKV_MSG_H
#define QKV_MSG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QKV_MALFORMED (-2) /* bytes from a peer failed validation */
#define QKV_MAX_ENDPOINT 256 /* longest endpoint carried in a message */

/* Message types (first array element). */
enum { QKV_MSG_APPEND = 1, QKV_MSG_ACK = 2 };

/* Log entry operations. */
typedef enum {
    QKV_OP_PUT = 1,    /* set key to value */
    QKV_OP_DELETE = 2, /* remove key (value empty) */
    QKV_OP_RESET = 3   /* empty the whole store (key and value empty) */
} qkv_op_t;

/* One log entry as the log holds it: a single allocation with key then
   value in data[]. index 0 never names an entry. */
typedef struct {
    uint64_t index;     /* global position in the log, from 1 */
    uint64_t term;      /* term of the leader that created it */
    uint32_t key_len;   /* bytes of key at data[0] */
    uint32_t value_len; /* bytes of value at data[key_len] */
    uint8_t op;         /* qkv_op_t */
    char data[];        /* key bytes, then value bytes */
} qkv_entry_t;

/* Allocates an entry holding copies of key and value; index is 0 until the
   log assigns one. Returns NULL when out of memory. Free with free(). */
qkv_entry_t *qkv_entry_new(qkv_op_t op, uint64_t term, const void *key,
                           size_t key_len, const void *value, size_t value_len);

/* An entry inside a decoded frame. */
typedef struct {
    uint64_t term;
    uint8_t op;
    const char *key; /* into the frame; not NUL-terminated */
    uint32_t key_len;
    const char *value; /* into the frame; not NUL-terminated */
    uint32_t value_len;
} qkv_entry_view_t;

/* A decoded message. Fields that the type does not carry are zero. */
typedef struct {
    int type;              /* QKV_MSG_APPEND or QKV_MSG_ACK */
    uint64_t repl_id;      /* the leader's replication id (= term for now) */
    uint64_t prev_index;   /* APPEND: index just before entries[0] */
    uint64_t commit_index; /* APPEND: the leader's commit index */
    uint64_t last_index;   /* ACK: last index the follower holds */
    const char *leader;    /* APPEND: leader's client endpoint, may be "" */
    size_t leader_len;
    size_t entry_count;    /* APPEND: number of entries */
    const qkv_entry_view_t *entries; /* owned by the decoder */
} qkv_msg_t;

/*  ---------------------------------------------------------------------
    Encoder: builds one frame at a time in a buffer it owns and reuses. */
typedef struct qkv_encoder_t qkv_encoder_t;

/* Returns a new encoder, or NULL when out of memory. */
qkv_encoder_t *qkv_encoder_new(void);
/* Destroys the encoder and nulls *self_p; safe on NULL. */
void qkv_encoder_destroy(qkv_encoder_t **self_p);

/* Starts an APPEND that will carry exactly entry_count entries, each added
   with qkv_encoder_add_entry. leader is the client endpoint followers
   hand to clients (at most QKV_MAX_ENDPOINT bytes). Discards whatever the
   encoder held. */
void qkv_encoder_append_begin(qkv_encoder_t *self, uint64_t repl_id,
                              uint64_t prev_index, uint64_t commit_index,
                              const char *leader, size_t leader_len,
                              size_t entry_count);
/* Adds the next entry of the APPEND begun last. */
void qkv_encoder_add_entry(qkv_encoder_t *self, const qkv_entry_t *entry);
/* Encodes an ACK, discarding whatever the encoder held. */
void qkv_encoder_ack(qkv_encoder_t *self, uint64_t repl_id,
                     uint64_t last_index);
/* The frame built so far; valid until the next call on the encoder. Returns
   NULL (size 0) if an allocation failed while building it. */
const void *qkv_encoder_data(const qkv_encoder_t *self, size_t *size);

/* Upper bound of the bytes an entry adds to an APPEND frame. */
size_t qkv_entry_wire_size(const qkv_entry_t *entry);

/*  ---------------------------------------------------------------------
    Decoder: validates untrusted frames. */
typedef struct qkv_decoder_t qkv_decoder_t;

/* Limits a decoder enforces on every frame. */
typedef struct {
    size_t max_frame_bytes; /* larger frames are malformed */
    size_t max_key_bytes;   /* longer keys are malformed */
    size_t max_value_bytes; /* longer values are malformed */
} qkv_decoder_limits_t;

/* Returns a new decoder enforcing limits, or NULL when out of memory. */
qkv_decoder_t *qkv_decoder_new(const qkv_decoder_limits_t *limits);
/* Destroys the decoder and nulls *self_p; safe on NULL. */
void qkv_decoder_destroy(qkv_decoder_t **self_p);

/* Decodes one frame. Returns 0 and sets *msg (owned by the decoder, valid
   until its next call and while data lives); QKV_MALFORMED for anything but
   one well-formed message within the limits; -1 when out of memory. Never
   allocates more than a small multiple of size. */
int qkv_decoder_decode(qkv_decoder_t *self, const void *data, size_t size,
                       const qkv_msg_t **msg);

#ifdef __cplusplus
}
#endif
#endif
