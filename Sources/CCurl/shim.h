#ifndef ENVOY_CCURL_SHIM_H
#define ENVOY_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic, which Swift cannot call:
   one typed shim per argument kind. */
static inline CURLcode envoy_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode envoy_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode envoy_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
/* Callbacks get their own shims so that Swift passes a typed C function pointer. */
typedef size_t (*envoy_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);
static inline CURLcode envoy_curl_setopt_write_function(CURL *handle, envoy_curl_data_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}
static inline CURLcode envoy_curl_setopt_header_function(CURL *handle, envoy_curl_data_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}
static inline CURLMcode envoy_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
static inline CURLcode envoy_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
/* CURLMsg's result sits in a union. */
static inline CURLcode envoy_curl_msg_result(CURLMsg *message) {
    return message->data.result;
}
/* CURLVERSION_NOW is a macro alias Swift cannot see. */
static inline curl_version_info_data *envoy_curl_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}
#endif
