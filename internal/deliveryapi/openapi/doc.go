// Package openapi holds the delivery API's OpenAPI definitions, generated
// by openapi-gen (make generate) from api/deliveries and the apimachinery
// types it uses: the API server needs them for server-side apply and
// serves them to kubectl (explain, validation).
package openapi
