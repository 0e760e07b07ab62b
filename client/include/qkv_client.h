/*  qkv_client.h - libqkv, the C client of qkv over ZeroMQ.

    A handle talks to one node at a time over one DEALER socket, speaking
    the client protocol of proto/PROTOCOL.md. It offers blocking calls
    (qkv_put, qkv_get, qkv_delete, qkv_reset, qkv_health and a dump
    iterator) and a pipelined interface (qkv_submit_*, qkv_flush,
    qkv_poll) that keeps thousands of requests in flight on the one
    connection. Both can be mixed on one handle.

    Connections. qkv_client_new takes a comma-separated list of endpoints
    (tcp://HOST:PORT) and connects to the first. A write answered
    not_leader with the leader's endpoint makes the handle connect there
    and send again (at most max_redirects times per request). When the
    current node falls silent (no answer to anything, not even to a small
    health probe, for 2 x retry_ms while requests are outstanding) the
    handle moves to the next endpoint of the list (or reconnects to the
    same one when it is the only one) and sends every outstanding request
    again there. Each switch resends every outstanding request.

    Idempotent writes. Every write carries the handle's client_id (random
    unless given in the options) and the next client_seq, both from 1 to
    2^53 - 1, so a resent write is never applied twice: the leader answers
    the original entry's index and seq. The same pair with other content
    is QKV_ECONFLICT; a pair the node no longer remembers (or a seq above
    1 from a client_id it does not know, e.g. after a leader restart) is
    QKV_ESESSION_EXPIRED. Neither is retried and neither writes anything;
    after QKV_ESESSION_EXPIRED make a new handle (a new client_id). A
    blocking call whose node is alive but has not answered sends its
    request again after retry_ms, then after twice that, and so on up to
    32 x retry_ms (within its timeout); pipelined requests are sent again
    only when the handle switches connection, so one lost to a node that
    restarted without falling silent completes with QKV_ETIMEOUT.
    Requests go out in the order they were made, on the first connection
    and again after a switch, so a handle's writes enter the log in that
    order (a write that timed out may still land, later than the ones
    after it).

    Deadlines. Every request, blocking or pipelined, has a deadline
    timeout_ms after it was made; a request not answered by then completes
    with QKV_ETIMEOUT. A timed-out write may still be applied: retry it
    with the same client_seq (qkv_client_set_next_seq) to be safe.

    Errors. Functions return 0 (QKV_OK) or a negative qkv_err_t; the
    text of the last failure (the node's message when it sent one) is
    available from qkv_client_errmsg.

    Thread safety. A handle must be used by one thread at a time (calls on
    it are not synchronised; a handle may move between threads with proper
    hand-over). Distinct handles are independent and may be used from
    different threads at once. qkv_strerror is thread-safe.

    Linking: in-tree, the target qkv_client; installed, libqkv.a with
    `pkg-config --cflags --libs qkv`.
*/
#ifndef QKV_CLIENT_H
#define QKV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  ---------------------------------------------------------------------
    Errors */

typedef enum {
    QKV_OK = 0,
    QKV_EINVAL = -1,        /* bad argument (empty key, bad endpoint, ...) */
    QKV_ENOMEM = -2,        /* out of memory */
    QKV_ETIMEOUT = -3,      /* no answer before the deadline */
    QKV_ENOTFOUND = -4,     /* get: no such key */
    QKV_ENOTLEADER = -5,    /* write sent to a follower, not redirected */
    QKV_EQUORUM = -6,       /* quorum_not_reached: not confirmed in time,
                               not rolled back; the index is known */
    QKV_ENOTREADY = -7,     /* min_index not applied within the wait */
    QKV_EBADREQ = -8,       /* the node answered bad_request */
    QKV_ETOOLARGE = -9,     /* key or value over the node's or protocol's
                               limit */
    QKV_EUNAVAILABLE = -10, /* the node answered unavailable */
    QKV_EPROTO = -11,       /* the node's answer broke the protocol */
    QKV_EAGAIN = -12,       /* the in-flight window is full: poll first */
    QKV_ESOCKET = -13,      /* ZeroMQ failed (see qkv_client_errmsg) */
    QKV_ECONFLICT = -14,    /* the write's (client_id, client_seq) was used
                               with other content: nothing written */
    /* the write's pair is older than the node's session memory (or a seq
       above 1 from a client_id it does not know): refused, not applied */
    QKV_ESESSION_EXPIRED = -15,
    /* the node cannot write its log (disk full, I/O error): nothing
       written; try again later */
    QKV_EINSUFFICIENT_STORAGE = -16,
    /* no leader is known (an election is under way): nothing written;
       try again shortly */
    QKV_ENO_LEADER = -17,
    /* the leader stepped down while the write waited: the outcome is
       unknown; retry with the same (client_id, client_seq) on any leader */
    QKV_ELEADER_CHANGED = -18,
    /* too many writes are in flight on the leader: nothing written; the
       handle waits and retries within the deadline before returning it */
    QKV_EOVERLOADED = -19,
    /* the node refused this client's CURVE key (no key, or one it does
       not list): nothing done */
    QKV_EUNAUTHORIZED = -20,
    /* the client's key lacks the permission (a write with a read key) */
    QKV_EFORBIDDEN = -21
} qkv_err_t;

/* Static text for an error code ("timeout", ...); never NULL. */
const char *qkv_strerror(int code);

/*  ---------------------------------------------------------------------
    Handle */

typedef struct qkv_client_t qkv_client_t;

/* Options of a handle. Zero-initialise: every field left 0 takes the
   default given. */
typedef struct {
    int timeout_ms;         /* deadline of each request; default 5000 */
    int retry_ms;           /* silence before probing and resending;
                               default 1000; negative: never resend or
                               move to another endpoint */
    int max_redirects;      /* not_leader redirects per request; default
                               3; negative: never follow */
    size_t max_inflight;    /* outstanding pipelined requests; default
                               10000 (qkv_submit_* then says QKV_EAGAIN) */
    size_t batch_requests;  /* most requests in one frame; default 1000,
                               at most 65536 */
    size_t batch_bytes;     /* a frame is sent once it holds this many
                               bytes; default 1 MiB */
    size_t max_frame_bytes; /* largest answer frame accepted (ZeroMQ
                               drops the connection above it); default
                               256 MiB */
    uint64_t client_id;     /* writer identity for idempotent retries,
                               1 to 2^53 - 1; default random */
    uint64_t first_seq;     /* client_seq of the first write, 1 to
                               2^53 - 1; default 1 */
    /* CURVE (nodes with CURVE=on): this client's secret key, 40 Z85
       characters (qkv_client_read_key reads one from a file); NULL: plain
       text. */
    const char *curve_secret_key;
    /* The nodes' public key for endpoints that do not carry their own
       (an endpoint may be written tcp://HOST:PORT|key=KEY); a not_leader
       answer carries the leader's key, which the handle then uses. */
    const char *curve_server_key;
} qkv_client_options_t;

/* Reads a key file as qkv keygen writes them (NAME.key: owner-only, or
   NAME.pub) into key (41 bytes). Returns 0, or QKV_EINVAL with the
   reason in errbuf. */
int qkv_client_read_key(const char *path, bool secret, char *key, char *errbuf,
                        size_t errlen);

/* Creates a handle for endpoints, a comma-separated list of
   tcp://HOST:PORT[|key=KEY] (the first is used first, the others are
   fallbacks; KEY is the node's CURVE public key).
   options may be NULL for the defaults. Connecting is asynchronous:
   nothing waits for the node here. Returns the handle, or NULL with the
   reason in errbuf (errlen bytes; errbuf may be NULL) when an endpoint or
   option is invalid (e.g. client_id or first_seq above 2^53 - 1), or on
   a ZeroMQ or memory failure. */
qkv_client_t *qkv_client_new(const char *endpoints,
                             const qkv_client_options_t *options, char *errbuf,
                             size_t errlen);

/* Destroys the handle and nulls *self_p; safe on NULL. Outstanding
   requests are abandoned and their completions discarded (writes already
   sent may still be applied). */
void qkv_client_destroy(qkv_client_t **self_p);

/* Text of the last failure on this handle (blocking call, submit or
   completion): the node's message when it sent one. Valid until the next
   call on the handle; "" when nothing failed yet. */
const char *qkv_client_errmsg(const qkv_client_t *self);

/* The endpoint the handle talks to now (after redirects and fallbacks).
   Valid until the next call on the handle. */
const char *qkv_client_endpoint(const qkv_client_t *self);

/* Changes timeout_ms for requests made from now on (> 0). */
void qkv_client_set_timeout(qkv_client_t *self, int timeout_ms);

/* The handle's client_id (1 to 2^53 - 1). */
uint64_t qkv_client_id(const qkv_client_t *self);

/* The client_seq the next write will carry. */
uint64_t qkv_client_next_seq(const qkv_client_t *self);

/* For callers that retry by hand: the next write carries seq (1 to
   2^53 - 1). Returns 0, or QKV_EINVAL (nothing changed) for a seq out of
   that range. A write repeated with a client_seq it already carried is
   not applied again; the leader answers the original entry's index and
   seq (as long as the cluster remembers it: the last DEDUP_WINDOW tagged
   writes of all clients, within SESSION_TTL_S of the client's last write;
   QKV_ESESSION_EXPIRED after that), or QKV_ECONFLICT when the content
   differs. To retry a write that failed with QKV_ETIMEOUT: note seq =
   qkv_client_next_seq before the first attempt; then saved =
   qkv_client_next_seq, set seq, repeat the same write, and set saved
   back. */
int qkv_client_set_next_seq(qkv_client_t *self, uint64_t seq);

/* Counters of a handle since it was made. */
typedef struct {
    uint64_t requests;        /* requests made (blocking and pipelined) */
    uint64_t frames_sent;     /* request frames handed to ZeroMQ */
    uint64_t frames_received; /* answer frames taken in */
    uint64_t resent;          /* requests sent again (same id and seq) */
    uint64_t redirects;       /* moves to the leader after not_leader */
    uint64_t failovers;       /* moves because the node fell silent */
    uint64_t malformed;       /* answer frames dropped as malformed */
    uint64_t timeouts;        /* requests completed with QKV_ETIMEOUT */
    uint64_t retried;         /* writes sent again, same pair, after
                                 no_leader, leader_changed or
                                 quorum_not_reached */
    uint64_t peak_in_flight;  /* most requests sent and unanswered at once */
} qkv_client_stats_t;

/* Copies the handle's counters into *stats. */
void qkv_client_stats(const qkv_client_t *self, qkv_client_stats_t *stats);

/*  ---------------------------------------------------------------------
    Blocking calls. Keys are 1 byte to 1 MiB, values up to 64 MiB (the
    node may have lower limits: QKV_ETOOLARGE); both are bytes with a
    length and need no NUL. Each call waits at most timeout_ms. */

/* What a call returns besides its status. */
typedef struct {
    uint64_t index;   /* writes: the entry's index (also with QKV_EQUORUM);
                         get: the entry that last wrote the key */
    uint64_t seq;     /* put and get: the key's seq */
    bool deleted;     /* delete: whether the key existed */
    char *value;      /* get: a malloc'd copy, NUL-terminated; the caller
                         frees it with free(); NULL otherwise */
    size_t value_len; /* bytes in value, not counting the NUL */
} qkv_result_t;

/* Writes key = value on the leader and waits until it commits. Returns 0,
   QKV_EQUORUM (result->index is set), or an error. result may be NULL. */
int qkv_put(qkv_client_t *self, const void *key, size_t key_len,
            const void *value, size_t value_len, qkv_result_t *result);

/* Reads key from the current node. With min_index > 0 the node answers
   only once it has applied that index (read-your-writes on followers),
   or QKV_ENOTREADY when it does not get there before the deadline.
   Returns 0 with result->value (caller frees), QKV_ENOTFOUND, or an
   error. result may be NULL. */
int qkv_get(qkv_client_t *self, const void *key, size_t key_len,
            uint64_t min_index, qkv_result_t *result);

/* Deletes key (a replicated entry; a deleted key starts again at seq 1).
   Returns 0 with result->deleted saying whether it existed, QKV_EQUORUM,
   or an error. result may be NULL. */
int qkv_delete(qkv_client_t *self, const void *key, size_t key_len,
               qkv_result_t *result);

/* Empties every node (a replicated entry). Returns 0, QKV_EQUORUM or an
   error; result->index is the entry's index. result may be NULL. */
int qkv_reset(qkv_client_t *self, qkv_result_t *result);

/* One follower as the leader sees it. */
typedef struct {
    char *id;       /* owned by the qkv_health_t */
    char *endpoint; /* owned by the qkv_health_t */
    bool connected;
    uint64_t acked_index;
    uint64_t lag;
} qkv_follower_info_t;

/* Health of a node. Strings are NUL-terminated and owned by the struct:
   release with qkv_health_clear. */
typedef struct {
    char *role;           /* "leader" or "follower" */
    char *node_id;        /* its NODE_ID */
    char *replication_id; /* the replication id it follows */
    char *error;          /* "" when healthy */
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t applied_index;
    qkv_follower_info_t *followers; /* leader only; NULL otherwise */
    size_t follower_count;
    /* The node's limits, to size requests (0 when it does not say) */
    uint64_t max_key_bytes;   /* longer keys: QKV_ETOOLARGE */
    uint64_t max_value_bytes; /* longer values: QKV_ETOOLARGE */
    uint64_t max_frame_bytes; /* a larger request frame makes ZeroMQ drop
                                 the connection (and the answers in flight
                                 on it): keep batch_bytes + one largest
                                 request below it */
} qkv_health_t;

/* Asks the current node for its health. Returns 0 with *health filled
   (release with qkv_health_clear) or an error (*health is then zeroed). */
int qkv_health(qkv_client_t *self, qkv_health_t *health);

/* Frees what qkv_health filled and zeroes it; safe on a zeroed struct. */
void qkv_health_clear(qkv_health_t *health);

/*  ---------------------------------------------------------------------
    Dump: every entry of the current node, pulled in chunks. */

typedef struct qkv_dump_t qkv_dump_t;

/* One key of a dump. key and value are NUL-terminated, owned by the
   iterator, and valid until the next call on it. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    uint64_t seq;
    uint64_t index;
} qkv_item_t;

/* Starts a dump through client (which must outlive it). With min_index >
   0 every chunk waits until the node has applied that index. limit is the
   most keys per chunk (0: the node's default; at most 10000, else
   qkv_dump_next says QKV_EINVAL). Nothing is sent until qkv_dump_next.
   Returns NULL when out of memory.

   The cursor that links chunks is only valid on the node that handed it
   out: when the handle has moved to another endpoint since (failover or
   redirect, also while a chunk is being fetched), qkv_dump_next fails
   with QKV_EBADREQ instead of asking the other node, and so does a node
   that no longer knows the cursor ("unknown cursor"). The dump cannot go
   on then: destroy it and start a new one. */
qkv_dump_t *qkv_dump_new(qkv_client_t *client, uint64_t min_index,
                         size_t limit);

/* Sets *item to the next entry, or to NULL when the dump is complete, and
   returns 0; fetches the next chunk (a blocking call) when needed. On an
   error returns it (QKV_ENOTREADY, QKV_ETIMEOUT, ...) and may be called
   again to retry the same chunk, except after QKV_EBADREQ (see
   qkv_dump_new). */
int qkv_dump_next(qkv_dump_t *self, const qkv_item_t **item);

/* The node's applied index when it read the first chunk (0 before). */
uint64_t qkv_dump_applied_index(const qkv_dump_t *self);

/* Destroys the iterator and nulls *self_p; safe on NULL. */
void qkv_dump_destroy(qkv_dump_t **self_p);

/*  ---------------------------------------------------------------------
    Pipelined calls. qkv_submit_* copy the key and value, queue the
    request and return at once with its id (unique per handle, from 1);
    queued requests go out in frames of batch_requests or batch_bytes, or
    at qkv_flush or qkv_poll. Requests on one handle are sent in the order
    they were submitted; completions come in any order. At most
    max_inflight requests may be outstanding (submitted and not yet
    completed): beyond that submit returns QKV_EAGAIN and the caller must
    qkv_poll. Submitting also sends full frames and takes in answers that
    have arrived, without waiting. */

typedef enum { QKV_REQ_PUT = 1, QKV_REQ_GET, QKV_REQ_DELETE } qkv_req_kind_t;

/* One finished request. */
typedef struct {
    uint64_t id;         /* as returned by submit */
    void *user;          /* as given to submit */
    qkv_req_kind_t kind; /* what was asked */
    int status;          /* 0 or a qkv_err_t, as for the blocking call */
    uint64_t index;      /* as in qkv_result_t */
    uint64_t seq;
    bool deleted;
    char *value; /* get: malloc'd, NUL-terminated; the caller
                    frees it with free(); NULL otherwise */
    size_t value_len;
} qkv_completion_t;

/* Queue a put, a get (min_index as for qkv_get) or a delete. Return 0 and
   set *id (id may be NULL), QKV_EAGAIN when the window is full,
   QKV_EINVAL or QKV_ETOOLARGE for a bad key or value, QKV_ENOMEM, or
   QKV_ESOCKET when a send failed. */
int qkv_submit_put(qkv_client_t *self, const void *key, size_t key_len,
                   const void *value, size_t value_len, void *user,
                   uint64_t *id);
int qkv_submit_get(qkv_client_t *self, const void *key, size_t key_len,
                   uint64_t min_index, void *user, uint64_t *id);
int qkv_submit_delete(qkv_client_t *self, const void *key, size_t key_len,
                      void *user, uint64_t *id);

/* Sends every queued request that ZeroMQ takes without blocking (the rest
   goes at the next qkv_poll). Returns 0 or QKV_ESOCKET / QKV_ENOMEM. */
int qkv_flush(qkv_client_t *self);

/* Sends what is queued, then waits up to timeout_ms (0: do not wait; -1:
   until something completes) for completions and stores at most max of
   them in out. Returns how many were stored (0 when none came in time or
   nothing is outstanding), or a negative error when the socket failed.
   The caller owns each completion's value. */
int qkv_poll(qkv_client_t *self, qkv_completion_t *out, size_t max,
             int timeout_ms);

/* Pipelined requests submitted and not yet returned by qkv_poll. */
size_t qkv_outstanding(const qkv_client_t *self);

#ifdef __cplusplus
}
#endif
#endif
