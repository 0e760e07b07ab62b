/*  qkv_proto_priv.h - what the two codecs of proto/ share: the encoder and
    decoder internals, the prescanning unpacker. Only proto/src includes it.
*/
#ifndef QKV_PROTO_PRIV_H
#define QKV_PROTO_PRIV_H

#include "qkv_cmsg.h"
#include "qkv_msg.h"
#include <msgpack.h>
#include <stdbool.h>

struct qkv_encoder_t {
    msgpack_sbuffer buffer; /* the frame being built */
    msgpack_packer packer;  /* writes into buffer */
    bool failed;            /* an allocation failed while building */
    size_t entries_left;    /* APPEND: entries still to add */
    uint8_t trailer;        /* APPEND: the FSYNC policy, packed after them */
    uint64_t sent_us;       /* APPEND: the leader's clock, packed after it */
    uint64_t cluster_hash;  /* APPEND: and the sender's settings hash */
};

/* Growable arrays a decoder reuses for the client codec's views. */
enum {
    QKV_SCRATCH_REQUESTS,
    QKV_SCRATCH_RESULTS,
    QKV_SCRATCH_ITEMS,
    QKV_SCRATCH_FOLLOWERS,
    QKV_SCRATCH_HEALTH,
    QKV_SCRATCH_COUNT
};

typedef struct {
    void *data;   /* owned */
    size_t bytes; /* allocated */
} qkv_scratch_t;

struct qkv_decoder_t {
    qkv_decoder_limits_t limits; /* enforced on every frame */
    msgpack_zone zone;           /* object tree of the last frame */
    qkv_msg_t msg;               /* the last decoded message */
    qkv_entry_view_t *entries;   /* views into the last frame */
    size_t entries_cap;          /* slots allocated in entries */
    qkv_scratch_t scratch[QKV_SCRATCH_COUNT]; /* client codec views */
    char reason[64]; /* client codec: a frame error's text with a number */
    bool too_deep;   /* the last frame unpacked was refused for nesting
                        deeper than QKV_MAX_DEPTH */
};

/* Empties the encoder's buffer and clears its failure. */
void qkv_encoder_reset(qkv_encoder_t *self);
/* Records a failed msgpack_pack_* call (rc != 0). */
void qkv_encoder_check(qkv_encoder_t *self, int rc);

/* The deepest nesting a frame may have (the deepest legal message nests
   3 levels). */
#define QKV_MAX_DEPTH 8

/* Prescans and unpacks one frame into *root (valid until the next call).
   Returns 0, or QKV_MALFORMED with too_deep set when the nesting was what
   broke it. */
int qkv_decoder_unpack(qkv_decoder_t *self, const void *data, size_t size,
                       msgpack_object *root);

/* A scratch array of at least count elements of size bytes, or NULL when
   out of memory. Its content is undefined. */
void *qkv_decoder_scratch(qkv_decoder_t *self, int which, size_t count,
                          size_t size);

#endif
