#ifndef ENVOY_CCURL_SHIM_H
#define ENVOY_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt is variadic, which Swift cannot call: one typed shim per argument kind. */
static inline CURLcode envoy_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode envoy_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode envoy_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
/* CURLVERSION_NOW is a macro alias Swift cannot see. */
static inline curl_version_info_data *envoy_curl_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}
#endif
