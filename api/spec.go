package api

import _ "embed"

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI 3.0 document of the REST API (openapi.yaml).
func OpenAPI() []byte { return openapiYAML }
