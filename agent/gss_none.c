/*
 * GSSAPI without Kerberos, for the static agent only.
 *
 * Debian's libssh.a is built with GSSAPI, so its gssapi.o names the
 * gss_* functions of libgssapi_krb5, and Debian ships no static Kerberos
 * libraries. The agent never authenticates with GSSAPI (it logs in with
 * its credential's password, agent/conn.c), and libssh reaches gssapi.o
 * only for "gssapi-with-mic", which the agent never asks for. So the
 * static agent links these instead: every call that would do something
 * answers GSS_S_FAILURE ("no mechanism"), the release calls succeed and
 * clear what they were given. The dynamic build links the real library
 * and never sees this file.
 */
#include <stddef.h>

#include <gssapi/gssapi.h>

gss_OID GSS_C_NT_HOSTBASED_SERVICE = GSS_C_NO_OID;
gss_OID GSS_C_NT_USER_NAME = GSS_C_NO_OID;

#define GSS_NONE_FAIL(minor)                                                   \
    do {                                                                       \
        if ((minor) != NULL) {                                                 \
            *(minor) = 0;                                                      \
        }                                                                      \
        return GSS_S_FAILURE;                                                  \
    } while (0)

OM_uint32 gss_accept_sec_context(OM_uint32 *minor, gss_ctx_id_t *ctx,
                                 gss_cred_id_t cred, gss_buffer_t in,
                                 gss_channel_bindings_t cb, gss_name_t *src,
                                 gss_OID *mech, gss_buffer_t out,
                                 OM_uint32 *flags, OM_uint32 *time,
                                 gss_cred_id_t *deleg)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_acquire_cred(OM_uint32 *minor, gss_name_t name, OM_uint32 time,
                           gss_OID_set mechs, gss_cred_usage_t usage,
                           gss_cred_id_t *out, gss_OID_set *actual,
                           OM_uint32 *time_rec)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_add_oid_set_member(OM_uint32 *minor, gss_OID member,
                                 gss_OID_set *set)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_create_empty_oid_set(OM_uint32 *minor, gss_OID_set *set)
{
    if (set != NULL) {
        *set = GSS_C_NO_OID_SET;
    }
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_display_name(OM_uint32 *minor, gss_name_t name, gss_buffer_t out,
                           gss_OID *type)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_display_status(OM_uint32 *minor, OM_uint32 status, int type,
                             gss_OID mech, OM_uint32 *more, gss_buffer_t out)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_get_mic(OM_uint32 *minor, gss_ctx_id_t ctx, gss_qop_t qop,
                      gss_buffer_t msg, gss_buffer_t token)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_import_name(OM_uint32 *minor, gss_buffer_t in, gss_OID type,
                          gss_name_t *out)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_indicate_mechs(OM_uint32 *minor, gss_OID_set *set)
{
    if (set != NULL) {
        *set = GSS_C_NO_OID_SET;
    }
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_init_sec_context(OM_uint32 *minor, gss_cred_id_t cred,
                               gss_ctx_id_t *ctx, gss_name_t target,
                               gss_OID mech, OM_uint32 req, OM_uint32 time,
                               gss_channel_bindings_t cb, gss_buffer_t in,
                               gss_OID *actual, gss_buffer_t out,
                               OM_uint32 *ret_flags, OM_uint32 *time_rec)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_inquire_cred(OM_uint32 *minor, gss_cred_id_t cred,
                           gss_name_t *name, OM_uint32 *life,
                           gss_cred_usage_t *usage, gss_OID_set *mechs)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_inquire_cred_by_mech(OM_uint32 *minor, gss_cred_id_t cred,
                                   gss_OID mech, gss_name_t *name,
                                   OM_uint32 *init_life, OM_uint32 *acc_life,
                                   gss_cred_usage_t *usage)
{
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_release_buffer(OM_uint32 *minor, gss_buffer_t buf)
{
    if (minor != NULL) {
        *minor = 0;
    }
    if (buf != GSS_C_NO_BUFFER) {
        buf->length = 0;
        buf->value = NULL;
    }
    return GSS_S_COMPLETE;
}

OM_uint32 gss_release_cred(OM_uint32 *minor, gss_cred_id_t *cred)
{
    if (minor != NULL) {
        *minor = 0;
    }
    if (cred != NULL) {
        *cred = GSS_C_NO_CREDENTIAL;
    }
    return GSS_S_COMPLETE;
}

OM_uint32 gss_release_name(OM_uint32 *minor, gss_name_t *name)
{
    if (minor != NULL) {
        *minor = 0;
    }
    if (name != NULL) {
        *name = GSS_C_NO_NAME;
    }
    return GSS_S_COMPLETE;
}

OM_uint32 gss_release_oid_set(OM_uint32 *minor, gss_OID_set *set)
{
    if (minor != NULL) {
        *minor = 0;
    }
    if (set != NULL) {
        *set = GSS_C_NO_OID_SET;
    }
    return GSS_S_COMPLETE;
}

OM_uint32 gss_test_oid_set_member(OM_uint32 *minor, gss_OID member,
                                  gss_OID_set set, int *present)
{
    if (present != NULL) {
        *present = 0;
    }
    GSS_NONE_FAIL(minor);
}

OM_uint32 gss_verify_mic(OM_uint32 *minor, gss_ctx_id_t ctx, gss_buffer_t msg,
                         gss_buffer_t token, gss_qop_t *qop)
{
    GSS_NONE_FAIL(minor);
}
