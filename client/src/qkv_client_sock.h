/*  qkv_client_sock.h - the one socket of a libqkv handle, made in one
    place with every option set explicitly (private to client/src).
*/
#ifndef QKV_CLIENT_SOCK_H
#define QKV_CLIENT_SOCK_H

#include <stddef.h>

/* A DEALER of ctx connected to endpoint, taking answer frames of at most
   max_frame_bytes. With a secret_key (Z85), a CURVE client with that key
   pair that accepts only server_key. Returns NULL with the reason in
   err. */
void *qkv_client_socket_open(void *ctx, const char *endpoint,
                             size_t max_frame_bytes, const char *secret_key,
                             const char *server_key, char *err,
                             size_t err_size);

#endif
