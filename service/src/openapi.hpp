#pragma once

// GET /openapi.json: the routing table as an OpenAPI 3.1 document.

#include <udshttp/service/router.hpp>

#include <string>

namespace udshttp::service::detail {

// The OpenAPI 3.1 document of every route in r, in the order they were added. HEAD is not
// listed: GET routes answer it.
std::string openapi_document(const router& r);

} // namespace udshttp::service::detail
