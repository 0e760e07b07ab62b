/*  qkv_sockopt.c - the node's ZeroMQ sockets and their options
    (qkv_sockopt.h).

    All sockets: linger 0 (a stopping node does not wait for peers), high
    water marks of 100 000 messages (sends use ZMQ_DONTWAIT: a full queue
    fails the send, it never blocks the actor), ZMTP heartbeats every
    second with a 3 s timeout to notice dead TCP peers, and a largest
    accepted message (ZeroMQ drops the connection above it). With CURVE
    (qkv_curve.h), listeners are CURVE servers whose ZAP domain names the
    port, and links are CURVE clients that accept one server key.
*/
#include "qkv_sockopt.h"
#include "qkv_curve.h"
#include "qkv_say.h"

#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>

#define S_HWM 100000
#define S_ZMTP_HEARTBEAT_MS 1000
#define S_ZMTP_TIMEOUT_MS 3000

static void s_common(zsock_t *sock, size_t max_in) {
    zsock_set_linger(sock, 0);
    zsock_set_sndhwm(sock, S_HWM);
    zsock_set_rcvhwm(sock, S_HWM);
    zsock_set_heartbeat_ivl(sock, S_ZMTP_HEARTBEAT_MS);
    zsock_set_heartbeat_ttl(sock, S_ZMTP_TIMEOUT_MS);
    zsock_set_heartbeat_timeout(sock, S_ZMTP_TIMEOUT_MS);
    zsock_set_maxmsgsize(sock, (int64_t)max_in);
}

static zsock_t *s_dealer(const char *endpoint, const char *id, size_t max_in,
                         const qkv_sockopt_curve_t *curve,
                         const char *server_key) {
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    s_common(sock, max_in);
    if (curve) {
        zsock_set_curve_serverkey(sock, server_key);
        zsock_set_curve_publickey(sock, curve->public_key);
        zsock_set_curve_secretkey(sock, curve->secret_key);
    }
    zsock_set_identity(sock, id);
    zsock_set_immediate(sock, 1); /* nothing queues for an absent peer */
    zsock_set_reconnect_ivl(sock, 100);
    zsock_set_reconnect_ivl_max(sock, 1000);
    if (zsock_connect(sock, "%s", endpoint) != 0)
        zsock_destroy(&sock);
    return sock;
}

zsock_t *qkv_sockopt_leader_link(const char *endpoint, size_t max_in) {
    return s_dealer(endpoint, QKV_LEADER_ROUTING_ID, max_in, NULL, NULL);
}

zsock_t *qkv_sockopt_peer_link(const char *endpoint, const char *self_id,
                               size_t max_in, const qkv_sockopt_curve_t *curve,
                               const char *server_key) {
    return s_dealer(endpoint, self_id, max_in, curve, server_key);
}

/* A ROUTER bound on tcp://bind:port; handover lets a peer that comes
   back with the same routing id take its place at once. */
static zsock_t *s_router(const char *bind, int port, size_t max_in,
                         bool handover, const qkv_sockopt_curve_t *curve,
                         const char *domain) {
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock)
        return NULL;
    s_common(sock, max_in);
    if (curve) {
        zsock_set_curve_server(sock, 1);
        zsock_set_curve_secretkey(sock, curve->secret_key);
        zsock_set_zap_domain(sock, domain);
    }
    zsock_set_router_handover(sock, handover);
    zsock_set_router_mandatory(sock, 1); /* a gone peer fails the send */
    if (zsock_bind(sock, "tcp://%s:%d", bind, port) < 0)
        zsock_destroy(&sock);
    return sock;
}

zsock_t *qkv_sockopt_follower_router(const char *bind, int port, size_t max_in,
                                     const qkv_sockopt_curve_t *curve) {
    /* handover: a restarted leader (or peer) takes its place at once */
    return s_router(bind, port, max_in, true, curve, QKV_CURVE_DOMAIN_REPL);
}

zsock_t *qkv_sockopt_client_router(const char *bind, int port, size_t max_in,
                                   const qkv_sockopt_curve_t *curve) {
    return s_router(bind, port, max_in, false, curve, QKV_CURVE_DOMAIN_CLIENT);
}

int qkv_sockopt_monitor_event(zsock_t *monitor, uint16_t *event,
                              uint32_t *value) {
    void *handle = zsock_resolve(monitor);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return -1;
    }
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&msg) >= 6) { /* event id (16 bits), value (32) */
        memcpy(event, zmq_msg_data(&msg), 2);
        memcpy(value, (char *)zmq_msg_data(&msg) + 2, 4);
    }
    bool more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&msg);
        more = zmq_msg_recv(&msg, handle, 0) >= 0 && zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    return 0;
}

bool qkv_sockopt_over_budget(const qkv_fd_budget_t *budget) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return false;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return false;
    long long open = -3; /* ".", ".." and the directory's own */
    while (readdir(dir))
        open++;
    closedir(dir);
    return open + budget->reserve > (long long)rl.rlim_cur;
}

#define S_CLOSED_US 1000000 /* a guarded port stays closed a second */

static void s_guard_close(qkv_port_guard_t *guard, const char *why,
                          int64_t now) {
    if (guard->reopen_at_us || zmq_unbind(guard->handle, guard->endpoint) != 0)
        return;
    guard->reopen_at_us = now + S_CLOSED_US;
    guard->closed++;
    qkv_warn("%s: %s; closed %s and its connections for %d ms (raise "
             "ulimit -n)",
             guard->name, why, guard->endpoint, S_CLOSED_US / 1000);
}

void qkv_port_guard_event(qkv_port_guard_t *guard, uint16_t event,
                          uint32_t value, int64_t now) {
    if (event == ZMQ_EVENT_ACCEPTED && guard->budget &&
        qkv_sockopt_over_budget(guard->budget))
        s_guard_close(guard,
                      "more connections than the open-file limit leaves "
                      "room for",
                      now);
    else if (event == ZMQ_EVENT_ACCEPT_FAILED &&
             (value == EMFILE || value == ENFILE))
        s_guard_close(guard, "accept failed: out of file descriptors", now);
}

int64_t qkv_port_guard_reopen(qkv_port_guard_t *guard, int64_t now) {
    if (!guard->reopen_at_us || now < guard->reopen_at_us)
        return guard->reopen_at_us;
    if (zmq_bind(guard->handle, guard->endpoint) != 0) {
        guard->reopen_at_us = now + S_CLOSED_US;
        return guard->reopen_at_us;
    }
    guard->reopen_at_us = 0;
    qkv_info("%s: %s open again", guard->name, guard->endpoint);
    return 0;
}
