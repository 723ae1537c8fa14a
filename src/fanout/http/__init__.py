"""``fanout http``: a JSONL batch of HTTP requests, sent on the core orchestrator.

Not a second engine: one async callable per request, plus a reader and a writer.

    _spec.py     the input: line forms (fanout's, OpenAI Batch), validation
                 (streamed), ``${VAR}`` in headers, URL and params
    _client.py   the async callable (aiohttp, one session), redirects, retry hints
    _proxy.py    which proxy a request goes through (--proxy, HTTPS_PROXY, NO_PROXY)
    _record.py   the output record of one request (or its Batch output line),
                 secrets scrubbed
    _redact.py   which headers are secrets, and scrubbing their values out
    _summary.py  counts, latency percentiles, the end-of-run summary
    _tokens.py   token estimates of LLM requests, as the providers' limiters count them
    _ratelimit.py  rate-limit headers (OpenAI, Anthropic, IETF) for the run's flow control;
                 the token cost of a request, usage from its answer
    _chat.py     ``fanout chat``: the chat APIs (OpenAI, Anthropic), the request of a prompt,
                 the answer read from a response
    _chat_input.py   prompt files (text, JSONL) read as requests
    _chat_record.py  the output record of a prompt

The ``fanout http`` command is ``fanout.cli._http``; the durable output file
(append, resume, torn-line repair) is ``fanout._journal``.
"""
