"""The virtual secretary on WhatsApp, through Twilio: a second channel beside the telephone.

Why a package of its own: the telephone side (`esl_controller`, `ivr_flows`) is a long-lived
Event Socket server whose calls live in greenlets; this channel is an HTTP service and a task
queue with its own failure model (Twilio's webhook deadline, retries, a dead-letter queue,
idempotent replies) and its own dependencies (Flask, huey, twilio, limits, PyAV; the
``whatsapp`` extra). Both answer through the same secretary engine (`rag.secretary`) with each
tenant's own documents and providers; nothing on the telephone side imports this package.

The path of a message:

1. `web` (``ivr web``, Flask on gevent's WSGI server): ``POST /twilio/whatsapp`` finds the
   account by (AccountSid, To) (`store`), checks ``X-Twilio-Signature`` (`signature`), applies the
   rate limits (`rate_limits`), stores the message once per MessageSid and enqueues it (`queue`),
   and answers an empty TwiML ``<Response/>`` at once;
2. `worker` (``ivr whatsapp worker``, huey consumer with greenlet workers) claims the message
   under a lease, in order per contact (`processing`): conversation and idle expiry
   (`conversations`), business hours (`account_settings`), voice notes (`media`,
   `voice_notes`), the secretary's answer, and what the decision means here — a reply (`replies`,
   split by `splitting`) or a handoff to a person (`handoff`);
3. what goes out is planned in the database first and sent at most once per part; retryable
   failures back off (`retry_policy`), the last one goes to the dead-letter table;
   `recovery` re-enqueues what a killed worker left behind.

``errors`` is the exception family; ``settings`` the channel's configuration from the
environment; ``logs`` the redaction and correlation id; ``metrics`` the Prometheus metrics.
"""
