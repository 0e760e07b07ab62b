/*  qkv_client_sock.c - the handle's DEALER and every option it has
    (qkv_client_sock.h).
*/
#include "qkv_client_sock.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <zmq.h>

/* CURVE: the key pair and the server's key, before connecting. */
static int s_curve(void *sock, const char *secret_key, const char *server_key,
                   char *err, size_t err_size) {
    char public_key[41];
    if (zmq_curve_public(public_key, secret_key) != 0) {
        snprintf(err, err_size, "the CURVE secret key is not valid Z85");
        return -1;
    }
    if (!server_key || !*server_key) {
        snprintf(err, err_size,
                 "CURVE: no server key for this endpoint (give one, or "
                 "ENDPOINT|key=KEY)");
        return -1;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, public_key, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_key, 40) != 0) {
        snprintf(err, err_size, "CURVE keys: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void *qkv_client_socket_open(void *ctx, const char *endpoint,
                             size_t max_frame_bytes, const char *secret_key,
                             const char *server_key, char *err,
                             size_t err_size) {
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    if (!sock) {
        snprintf(err, err_size, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    const int linger = 0;             /* destroy drops what is unsent */
    const int sndhwm = 1000;          /* frames; a full queue waits */
    const int rcvhwm = 0;             /* answers are bounded by requests */
    const int immediate = 0;          /* queue before the connection is up */
    const int reconnect_ivl = 100;    /* ms */
    const int reconnect_max = 2000;   /* ms, backoff cap */
    const int connect_timeout = 2000; /* ms per TCP connect */
    const int hb_ivl = 1000;          /* ms between ZMTP pings */
    const int hb_timeout = 3000;      /* ms without traffic: reconnect */
    const int hb_ttl = 10000;         /* ms the node waits for our pings */
    const int keepalive = 1;
    const int64_t maxmsg = (int64_t)max_frame_bytes;
    const struct {
        int option;
        const void *value;
        size_t size;
        const char *name;
    } options[] = {
        {ZMQ_LINGER, &linger, sizeof linger, "ZMQ_LINGER"},
        {ZMQ_SNDHWM, &sndhwm, sizeof sndhwm, "ZMQ_SNDHWM"},
        {ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm, "ZMQ_RCVHWM"},
        {ZMQ_IMMEDIATE, &immediate, sizeof immediate, "ZMQ_IMMEDIATE"},
        {ZMQ_RECONNECT_IVL, &reconnect_ivl, sizeof reconnect_ivl,
         "ZMQ_RECONNECT_IVL"},
        {ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max,
         "ZMQ_RECONNECT_IVL_MAX"},
        {ZMQ_CONNECT_TIMEOUT, &connect_timeout, sizeof connect_timeout,
         "ZMQ_CONNECT_TIMEOUT"},
        {ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl, "ZMQ_HEARTBEAT_IVL"},
        {ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout,
         "ZMQ_HEARTBEAT_TIMEOUT"},
        {ZMQ_HEARTBEAT_TTL, &hb_ttl, sizeof hb_ttl, "ZMQ_HEARTBEAT_TTL"},
        {ZMQ_TCP_KEEPALIVE, &keepalive, sizeof keepalive, "ZMQ_TCP_KEEPALIVE"},
        {ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg, "ZMQ_MAXMSGSIZE"},
    };
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (zmq_setsockopt(sock, options[i].option, options[i].value,
                           options[i].size) != 0) {
            snprintf(err, err_size, "%s: %s", options[i].name,
                     zmq_strerror(errno));
            zmq_close(sock);
            return NULL;
        }
    }
    if (secret_key && s_curve(sock, secret_key, server_key, err, err_size)) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, endpoint) != 0) {
        snprintf(err, err_size, "cannot connect to '%s': %s", endpoint,
                 zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}
