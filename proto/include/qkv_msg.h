/*  qkv_msg.h - the replication wire format (leader <-> followers).

    Two messages travel on a replication link, each one msgpack array in one
    ZeroMQ frame (proto/PROTOCOL.md is the reference):

      APPEND  [1, version, cluster_id, term, prev_index, prev_term,
               commit_index, leader, entries, fsync, sent_us,
               cluster_hash, ...]
              entries = [[term, op, key, value, client_id, client_seq,
                          time_ms, ...], ...]; entry i has index
              prev_index + 1 + i. No entries = HEARTBEAT.
      ACK     [2, version, cluster_id, term, ok, index, hint_index,
               hint_term, echo_us, ...]
      SNAPSHOT [3, version, cluster_id, term, snap_index, snap_term,
               offset, total, chunk (bin), ...]: a follower behind the
              leader's log gets the state machine's image in chunks
              (in order; offset 0 starts it over), then the log after
              snap_index.
      VOTE    [4, version, cluster_id, term, pre, last_index, last_term,
               cluster_hash, ...]: a candidate asks for a vote in term
              (pre: would the peer vote, without either raising its term)
      VOTE_ACK [5, version, cluster_id, term, pre, granted, cluster_hash,
               ...]
      TIMEOUT_NOW [6, version, cluster_id, term, cluster_hash, ...]: the
              leader hands over: the peer campaigns at once
      (VOTE has one more optional element after cluster_hash: transfer,
      a bool: the candidate campaigns on the leader's TIMEOUT_NOW)


    Growing without a flag day: a message or entry may carry more elements
    than listed; a decoder ignores the ones it does not know. A change that
    an older node must not ignore raises the version; a frame of a higher
    version than this build speaks decodes as QKV_NEWER, so the node can
    say why it refuses its peer.

    Decoding is strict otherwise: a frame must be exactly one well-formed
    message of a known type with every listed field of the right type and
    within the limits given to the decoder, or it is rejected as malformed.
    Decoded keys and values point into the caller's frame (not
    NUL-terminated) and stay valid only as long as that frame and the next
    call on the same decoder.
*/
#ifndef QKV_MSG_H
#define QKV_MSG_H

#include "qkv_entry.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QKV_MALFORMED (-2)   /* bytes from a peer failed validation */
#define QKV_NEWER (-3)       /* a replication message of a newer version */
#define QKV_MAX_ENDPOINT 256 /* longest endpoint carried in a message */
#define QKV_REPL_VERSION 1   /* the replication protocol this build speaks */
/* The highest term a frame may carry (any term field): a term grows by one
   per election, so no cluster gets near it, and a node's term + 1 never
   overflows however high a peer's term was. Above it: malformed. */
#define QKV_TERM_MAX (UINT64_C(1) << 62)

/* Message types (first array element). */
enum {
    QKV_MSG_APPEND = 1,
    QKV_MSG_ACK = 2,
    QKV_MSG_SNAPSHOT = 3,
    QKV_MSG_VOTE = 4,
    QKV_MSG_VOTE_ACK = 5,
    QKV_MSG_TIMEOUT_NOW = 6
};

/* An entry inside a decoded frame. */
typedef struct {
    uint64_t term;
    uint64_t client_id;
    uint64_t client_seq;
    uint64_t time_ms;
    uint8_t op;
    const char *key; /* into the frame; not NUL-terminated */
    uint32_t key_len;
    const char *value; /* into the frame; not NUL-terminated */
    uint32_t value_len;
} qkv_entry_view_t;

/* A decoded message. Fields that the type does not carry are zero. */
typedef struct {
    int type;            /* QKV_MSG_APPEND or QKV_MSG_ACK */
    uint64_t version;    /* the sender's protocol version */
    uint64_t cluster_id; /* names the cluster (chosen by its first leader) */
    uint64_t term;       /* the sender's term */
    /* APPEND */
    uint64_t prev_index;   /* index just before entries[0] */
    uint64_t prev_term;    /* term of the entry at prev_index (0 for 0) */
    uint64_t commit_index; /* the leader's commit index */
    const char *leader;    /* leader's client endpoint, may be "" */
    size_t leader_len;
    size_t entry_count;              /* number of entries */
    const qkv_entry_view_t *entries; /* owned by the decoder */
    bool has_fsync;                  /* the leader said its FSYNC policy */
    uint8_t fsync;                   /* 0 always, 1 everysec, 2 never */
    int64_t sent_us;       /* the leader's clock as it sent (echoed); 0 none */
    uint64_t cluster_hash; /* APPEND, VOTE, VOTE_ACK: the sender's hash of
                              PEERS, WRITE_QUORUM and FSYNC; 0 none */
    /* ACK */
    bool ok;             /* the APPEND matched the follower's log */
    uint64_t index;      /* ok: end of the prefix it verified (and holds as
                            promised); refused: the prev_index refused */
    uint64_t hint_index; /* refused: walk back to here (the follower's
                            last index at or below the refused one) */
    uint64_t hint_term;  /* refused: the term of its entry at hint_index */
    int64_t echo_us;     /* the newest sent_us the follower received */
    /* VOTE and VOTE_ACK */
    bool pre;            /* a pre-vote: would the peer vote in term? */
    bool granted;        /* VOTE_ACK: yes */
    bool transfer;       /* VOTE: the leader handed over to the candidate
                            (TIMEOUT_NOW): a live leader does not stop it */
    uint64_t last_index; /* VOTE: the candidate's last index */
    uint64_t last_term;  /* ... and its term */
    /* SNAPSHOT: one chunk of a snapshot image (qkv_snap.h) */
    uint64_t snap_index; /* the last entry the snapshot holds */
    uint64_t snap_term;  /* its term */
    uint64_t offset;     /* where the chunk goes in the image */
    uint64_t total;      /* the image's size */
    const char *chunk;   /* into the frame */
    size_t chunk_len;
} qkv_msg_t;

/*  ---------------------------------------------------------------------
    Encoder: builds one frame at a time in a buffer it owns and reuses. */
typedef struct qkv_encoder_t qkv_encoder_t;

/* Returns a new encoder, or NULL when out of memory. */
qkv_encoder_t *qkv_encoder_new(void);
/* Destroys the encoder and nulls *self_p; safe on NULL. */
void qkv_encoder_destroy(qkv_encoder_t **self_p);

/* The header of an APPEND. */
typedef struct {
    uint64_t cluster_id;
    uint64_t term;
    uint64_t prev_index;
    uint64_t prev_term;
    uint64_t commit_index;
    const char *leader; /* at most QKV_MAX_ENDPOINT bytes; NULL = "" */
    size_t leader_len;
    uint8_t fsync;   /* the FSYNC policy every node must share (0..2) */
    int64_t sent_us; /* the leader's clock (echoed in ACKs for its lease) */
    uint64_t cluster_hash; /* PEERS: of PEERS, WRITE_QUORUM, FSYNC; 0 none */
} qkv_append_head_t;

/* Starts an APPEND that will carry exactly entry_count entries, each added
   with qkv_encoder_add_entry. Discards whatever the encoder held. */
void qkv_encoder_append_begin(qkv_encoder_t *self,
                              const qkv_append_head_t *head,
                              size_t entry_count);
/* Adds the next entry of the APPEND begun last. */
void qkv_encoder_add_entry(qkv_encoder_t *self, const qkv_entry_t *entry);

/* The fields of an ACK. */
typedef struct {
    uint64_t cluster_id;
    uint64_t term;
    bool ok;
    uint64_t index;
    uint64_t hint_index;
    uint64_t hint_term;
    int64_t echo_us; /* the newest sent_us received from the leader */
} qkv_ack_t;

/* Encodes an ACK, discarding whatever the encoder held. */
void qkv_encoder_ack(qkv_encoder_t *self, const qkv_ack_t *ack);

/* The fields of a VOTE (a candidate asks) or a VOTE_ACK (the answer). */
typedef struct {
    int type; /* QKV_MSG_VOTE or QKV_MSG_VOTE_ACK */
    uint64_t cluster_id;
    uint64_t term;
    bool pre;            /* a pre-vote */
    uint64_t last_index; /* VOTE: the candidate's last entry */
    uint64_t last_term;
    bool granted;          /* VOTE_ACK */
    uint64_t cluster_hash; /* of PEERS, WRITE_QUORUM and FSYNC */
    bool transfer;         /* VOTE: a handover (TIMEOUT_NOW) */
} qkv_vote_t;

/* Encodes a TIMEOUT_NOW (the leader hands over to the peer: campaign at
   once), discarding whatever the encoder held. */
void qkv_encoder_timeout_now(qkv_encoder_t *self, uint64_t cluster_id,
                             uint64_t term, uint64_t cluster_hash);

/* Encodes a VOTE or VOTE_ACK, discarding whatever the encoder held. */
void qkv_encoder_vote(qkv_encoder_t *self, const qkv_vote_t *vote);

/* The fields of a SNAPSHOT chunk. */
typedef struct {
    uint64_t cluster_id;
    uint64_t term;
    uint64_t snap_index;
    uint64_t snap_term;
    uint64_t offset;
    uint64_t total;
    const void *chunk;
    size_t chunk_len;
} qkv_snapshot_chunk_t;

/* Encodes a SNAPSHOT chunk, discarding whatever the encoder held. */
void qkv_encoder_snapshot(qkv_encoder_t *self, const qkv_snapshot_chunk_t *c);

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

/* Decodes one replication frame. Returns 0 and sets *msg (owned by the
   decoder, valid until its next call and while data lives); QKV_NEWER for
   a message whose version is above QKV_REPL_VERSION (msg->version and
   msg->type are then set, nothing else); QKV_MALFORMED for anything but
   one well-formed message within the limits; -1 when out of memory.
   Never allocates more than a small multiple of size. */
int qkv_decoder_decode(qkv_decoder_t *self, const void *data, size_t size,
                       const qkv_msg_t **msg);

#ifdef __cplusplus
}
#endif
#endif
