//! The OpenAPI 3.1 document served at `/openapi.json`, describing every route.
//!
//! Written out by hand: the API is small, and this keeps the document exact
//! (status codes, error codes) without a macro layer over every handler.

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(desc: &str, schema: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": desc, "schema": { "type": "string" } })
}

fn wait_param() -> Value {
    json!({ "name": "wait", "in": "query", "required": false, "description": "Seconds to wait for the execution to finish before answering (capped by the server).", "schema": { "type": "number", "minimum": 0 } })
}

/// The document.
pub fn document() -> Value {
    let unauthorized = err("Missing or wrong bearer token (`missing_token`, `invalid_token`), when authentication is on.");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sagaflow API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable saga orchestration: register saga definitions, start executions, watch their history, cancel and redrive them. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`. The same server also speaks the AWS Step Functions protocol (AWS JSON 1.0: `POST /` with `X-Amz-Target: AWSStepFunctions.<Action>`, errors `{\"__type\", \"message\"}`), for the AWS CLI and SDKs; it is not an OpenAPI operation and is listed under `x-step-functions`."
        },
        "x-step-functions": {
            "endpoint": "POST /",
            "protocol": "AWS JSON 1.0 (Content-Type: application/x-amz-json-1.0)",
            "target": "X-Amz-Target: AWSStepFunctions.<Action>",
            "actions": crate::aws::ACTIONS,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:NAME",
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:NAME:ID"
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string", "description": "Stable machine-readable code, e.g. invalid_definition, execution_not_found, execution_conflict, malformed_json, payload_too_large. Every code, what it means and what to do: docs/errors.md in the repository." },
                        "message": { "type": "string" },
                        "details": { "description": "For invalid_definition: {violations: [{code, location, message}]}." }
                    } } }
                },
                "Definition": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" }, "version": { "type": "integer" }, "format": { "type": "string" },
                        "digest": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" },
                        "created": { "type": "boolean", "description": "PUT only: false if the source equals the latest version." },
                        "source": { "type": "string", "description": "GET of one definition only." }
                    }
                },
                "Execution": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" }, "definition": { "type": "string" }, "version": { "type": "integer" },
                        "status": { "type": "string", "enum": ["running", "compensating", "succeeded", "compensated", "failed", "cancelled", "timed_out"] },
                        "input": {}, "output": {},
                        "error": { "type": ["object", "null"], "properties": { "error": { "type": "string" }, "cause": { "type": "string" } } },
                        "started_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" },
                        "events": { "type": "integer", "description": "Number of history events." }
                    }
                },
                "ExecutionPage": { "type": "object", "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/Execution" } }, "next_cursor": { "type": ["string", "null"] } } },
                "DefinitionList": { "type": "object", "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/Definition" } } } },
                "DeadLetters": { "type": "object", "properties": { "dead_letters": { "type": "array", "items": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "execution_id": { "type": "string" }, "event": { "type": "string", "description": "`execution.<status>` or `execution.stuck`" },
                    "status": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" }, "failed_at": { "type": "string", "format": "date-time" },
                    "attempts": { "type": "integer" }, "last_error": { "type": "string" } } } } } },
                "Replayed": { "type": "object", "properties": { "replayed": { "type": "integer" }, "notification": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "execution_id": { "type": "string" }, "event": { "type": "string" } } } } },
                "History": { "type": "object", "properties": {
                    "execution": { "$ref": "#/components/schemas/Execution" },
                    "events": { "type": "array", "items": { "type": "object", "required": ["seq", "at", "type"], "properties": {
                        "seq": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                        "type": { "type": "string", "enum": ["execution_started", "step_scheduled", "step_succeeded", "step_failed", "task_parked", "retry_scheduled", "rollback_started", "cancel_requested", "compensation_scheduled", "compensation_succeeded", "compensation_failed", "execution_timed_out", "execution_redriven", "execution_finished"] }
                    } } },
                    "next_cursor": { "type": ["string", "null"], "description": "Where the next page starts; null on the last page." }
                } },
                "StartExecution": { "type": "object", "required": ["definition"], "additionalProperties": false, "properties": {
                    "definition": { "type": "string" }, "input": {}, "execution_id": { "type": "string", "description": "Makes the start idempotent: the same id and input return the existing execution; a different input is a 409." }
                } }
            }
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/healthz": { "get": { "summary": "Liveness; never needs a token.", "security": [], "responses": { "200": { "description": "ok" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics.", "responses": { "200": { "description": "text/plain exposition format" }, "401": unauthorized } } },
            "/openapi.json": { "get": { "summary": "This document.", "responses": { "200": { "description": "OpenAPI 3.1" }, "401": unauthorized } } },
            "/v1/definitions": { "get": { "summary": "Latest version of every definition.", "responses": { "200": ok("definitions", "DefinitionList"), "401": unauthorized } } },
            "/v1/definitions/{name}": {
                "parameters": [ path_param("name", "Definition name.") ],
                "get": { "summary": "One definition with its source.", "parameters": [ { "name": "version", "in": "query", "schema": { "type": "integer" } } ],
                    "responses": { "200": ok("the definition", "Definition"), "400": err("invalid_parameter: `version` is not a whole number, or the name is not UTF-8"), "404": err("definition_not_found"), "401": unauthorized } },
                "put": { "summary": "Register a saga definition (YAML or JSON body). A changed source creates a new version.",
                    "requestBody": { "required": true, "content": { "application/yaml": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "object" } } } },
                    "responses": { "201": ok("new version created", "Definition"), "200": ok("unchanged: the latest version", "Definition"),
                        "400": err("invalid_definition (details.violations lists every problem with its location and code), invalid_utf8, invalid_parameter"),
                        "413": err("payload_too_large"), "401": unauthorized } }
            },
            "/v1/definitions/{name}/explain": {
                "parameters": [ path_param("name", "Definition name.") ],
                "post": { "summary": "The failure explorer: a dry run of the definition (no participant is called) where `fail` (`STEP` or `STEP:ERROR`) fails on every attempt and `fail_compensation` names a compensation that keeps failing; answers the path (retries, compensations in order, where it ends, `elapsed_ms` at most, for a machine the Retry/Catch that handle the error) with its events. Without faults: every step's path (`steps`).",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "fail": { "type": "string" }, "fail_compensation": { "type": "string" }, "input": {}, "version": { "type": "integer" } } } } } },
                    "responses": { "200": { "description": "the explained path, or `steps`" },
                        "400": err("unknown_step (details.steps lists the steps), invalid_fault, explain_unsupported, malformed_json, invalid_request"),
                        "404": err("definition_not_found"), "413": err("payload_too_large"), "401": unauthorized } }
            },
            "/v1/definitions/{name}/graph": {
                "parameters": [ path_param("name", "Definition name.") ],
                "get": { "summary": "The definition drawn as a graph (what the console shows): `nodes` (id, label, type, parent group, pivot, location in the definition), `edges` (next, undo, compensation, choice, default, catch), `kind` (saga, asl, durable).",
                    "parameters": [ { "name": "version", "in": "query", "schema": { "type": "integer" } } ],
                    "responses": { "200": { "description": "the graph" }, "400": err("invalid_parameter"), "404": err("definition_not_found"), "401": unauthorized } },
                "post": { "summary": "Checks a definition's source (the body, YAML or JSON) without deploying it: its graph and `problems` ({code, location, message, node}), each placed on the node it concerns; a source that does not validate still gets the graph that can be drawn of it.",
                    "requestBody": { "required": true, "content": { "application/yaml": {}, "application/json": {} } },
                    "responses": { "200": { "description": "the graph and its problems (empty when the source is valid)" }, "400": err("invalid_utf8, invalid_definition for a source that is not YAML or JSON"), "413": err("payload_too_large"), "401": unauthorized } }
            },
            "/v1/executions/{id}/graph": { "get": { "summary": "The execution drawn as a graph: its definition's nodes, each in the state the history leaves it in (pending, running, retrying, succeeded, failed, compensating, compensated, parked with the `task_token` that answers it, stuck, cancelled, timed_out; attempts, error, times, input, output; a Map state's iterations), `why` (a sentence when the status is not succeeded), a durable function's operation tree and `invocations`.",
                "parameters": [ path_param("id", "Execution id.") ],
                "responses": { "200": { "description": "the graph" }, "404": err("execution_not_found"), "401": unauthorized } } },
            "/v1/executions": {
                "get": { "summary": "List executions, newest first.", "parameters": [
                        { "name": "status", "in": "query", "schema": { "type": "string" } },
                        { "name": "definition", "in": "query", "schema": { "type": "string" } },
                        { "name": "started_after", "in": "query", "description": "Only executions started at or after this RFC 3339 time.", "schema": { "type": "string", "format": "date-time" } },
                        { "name": "started_before", "in": "query", "description": "Only executions started before this RFC 3339 time.", "schema": { "type": "string", "format": "date-time" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } },
                        { "name": "cursor", "in": "query", "schema": { "type": "string" } } ],
                    "responses": { "200": ok("a page", "ExecutionPage"), "400": err("invalid_parameter, invalid_cursor"), "401": unauthorized } },
                "post": { "summary": "Start an execution of the latest version of a definition.", "parameters": [ wait_param() ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartExecution" } } } },
                    "responses": { "201": ok("started", "Execution"), "200": ok("already existed with the same input", "Execution"),
                        "400": err("malformed_json, invalid_request, invalid_execution_id, invalid_parameter (`wait`)"), "404": err("definition_not_found"),
                        "409": err("execution_conflict: the id exists with a different input"), "413": err("payload_too_large"), "503": err("shutting_down"), "401": unauthorized } }
            },
            "/v1/executions/{id}": { "get": { "summary": "One execution.", "parameters": [ path_param("id", "Execution id."), wait_param() ],
                "responses": { "200": ok("the execution", "Execution"), "400": err("invalid_parameter (`wait`, or an id that is not UTF-8)"), "404": err("execution_not_found"), "401": unauthorized } } },
            "/v1/executions/{id}/history": { "get": { "summary": "The execution's history events, oldest first, one page at a time: follow `next_cursor` until it is null.", "parameters": [ path_param("id", "Execution id."),
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1000 }, "description": "Events per page." },
                    { "name": "cursor", "in": "query", "schema": { "type": "string" }, "description": "The `next_cursor` of the previous page (opaque)." },
                    { "name": "after", "in": "query", "schema": { "type": "integer" }, "description": "Only events with seq greater than this (instead of `cursor`)." } ],
                "responses": { "200": ok("a page of the history", "History"), "400": err("invalid_parameter (`limit`, `after`, both `after` and `cursor`, or an id that is not UTF-8), invalid_cursor"), "404": err("execution_not_found"), "401": unauthorized } } },
            "/v1/executions/{id}/events": { "get": { "summary": "The execution's history as server-sent events (`text/event-stream`): `id` the event's seq, `event` its type, `data` its JSON as in the history. With `follow=true` it goes on as events are recorded and ends with an `end` event (the execution) once it has finished; `Last-Event-ID` (or `after`) resumes after that seq.",
                "parameters": [ path_param("id", "Execution id."),
                    { "name": "follow", "in": "query", "schema": { "type": "boolean", "default": false } },
                    { "name": "after", "in": "query", "schema": { "type": "integer" }, "description": "Only events with a greater seq." } ],
                "responses": { "200": { "description": "text/event-stream" }, "400": err("invalid_parameter (`follow`, `after`, `Last-Event-ID`, or an id that is not UTF-8)"), "404": err("execution_not_found"), "401": unauthorized } } },
            "/v1/events": { "get": { "summary": "Live updates of the executions list as server-sent events: the newest `limit` executions matching `status` and `definition`, one `execution` event (the execution's JSON) for each at the start, then one whenever an execution enters that page or changes. The stream does not end by itself.",
                "parameters": [ { "name": "status", "in": "query", "schema": { "type": "string" } },
                    { "name": "definition", "in": "query", "schema": { "type": "string" } },
                    { "name": "started_after", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                    { "name": "started_before", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } } ],
                "responses": { "200": { "description": "text/event-stream" }, "400": err("invalid_parameter"), "401": unauthorized } } },
            "/v1/executions/{id}/cancel": { "post": { "summary": "Cancel: compensate what was done; ends `cancelled`.", "parameters": [ path_param("id", "Execution id.") ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } },
                "responses": { "200": ok("the execution, now compensating", "Execution"), "400": err("malformed_json, invalid_request, invalid_parameter"), "404": err("execution_not_found"), "409": err("execution_finished, past_pivot"), "503": err("execution_busy (retry after `Retry-After` seconds: the execution was leaving memory each time the request reached it), shutting_down"), "500": err("history_unreplayable: the stored history does not replay on its definition (corrupt or foreign)"), "413": err("payload_too_large"), "401": unauthorized } } },
            "/v1/callbacks/{token}/{outcome}": { "post": { "summary": "Complete a callback task (a step with `callback: true`; its participant received the token in the `Sagaflow-Task-Token` header), or a durable function's callback (the token is its `CallbackId`, percent-encoded: it holds a `/`; the same as the Lambda API's `SendDurableExecutionCallback*`). `success`: the JSON body is the step's output (a callback's result, as sent); `failure`: `{error, cause}` (a callback's `ErrorType` and `ErrorMessage`; `Sagaflow.CallbackFailed` without `error`); `heartbeat`: checks the task is still waiting (keeps a callback open).",
                "parameters": [ path_param("token", "The task token, or a durable callback's `CallbackId`."), { "name": "outcome", "in": "path", "required": true, "schema": { "type": "string", "enum": ["success", "failure", "heartbeat"] } } ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {} } } },
                "responses": { "200": ok("the execution", "Execution"), "404": err("invalid_task_token, callback_not_found, route_not_found"), "409": err("callback_not_waiting"), "503": err("execution_busy (retry after `Retry-After` seconds: the execution was leaving memory each time the request reached it), shutting_down"), "500": err("history_unreplayable: the stored history does not replay on its definition (corrupt or foreign)"), "400": err("malformed_json, invalid_request, invalid_parameter"), "413": err("payload_too_large"), "401": unauthorized } } },
            "/v1/executions/{id}/redrive": { "post": { "summary": "Resume a `failed` execution from where it stopped.", "parameters": [ path_param("id", "Execution id.") ],
                "responses": { "200": ok("the execution, running again", "Execution"), "400": err("invalid_parameter (an id that is not UTF-8)"), "404": err("execution_not_found"), "409": err("not_redrivable"), "503": err("execution_busy (retry after `Retry-After` seconds: the execution was leaving memory each time the request reached it), shutting_down"), "500": err("history_unreplayable: the stored history does not replay on its definition (corrupt or foreign)"), "401": unauthorized } } },
            "/v1/dead-letters": { "get": { "summary": "Hook notifications whose delivery gave up, oldest first (kept until replayed; nothing is dropped).",
                "parameters": [ { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } } ],
                "responses": { "200": ok("the dead letters", "DeadLetters"), "400": err("invalid_limit, invalid_parameter"), "401": unauthorized } } },
            "/v1/dead-letters/{id}/replay": { "post": { "summary": "Put a dead letter back in the outbox: the hook delivers it again (as a new notification).",
                "parameters": [ path_param("id", "Dead letter id.") ],
                "responses": { "200": ok("replayed", "Replayed"), "400": err("invalid_id"), "404": err("dead_letter_not_found"), "401": unauthorized } } }
        }
    })
}
