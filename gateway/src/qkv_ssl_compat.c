/*  qkv_ssl_compat.c - lets Debian bookworm's civetweb 1.15 use OpenSSL 3.

    civetweb loads OpenSSL itself, with dlopen("libssl.so"), and looks up
    the OpenSSL 1.1 functions by name. OpenSSL 3 turned one of them,
    SSL_get_peer_certificate, into a macro over SSL_get1_peer_certificate,
    so the lookup fails and civetweb refuses TLS (civetweb issue #1334).

    This library is built with the soname libssl.so and depends on the real
    libssl.so.3. The gateway loads it (RTLD_GLOBAL) before civetweb starts;
    civetweb's dlopen("libssl.so") then finds it already loaded under that
    name, and every lookup through it reaches libssl.so.3 - except the one
    function OpenSSL 3 lacks, which is defined here. Nothing else of
    OpenSSL is changed.
*/
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

X509 *SSL_get_peer_certificate(const SSL *ssl);

X509 *SSL_get_peer_certificate(const SSL *ssl) {
    return SSL_get1_peer_certificate(ssl);
}
