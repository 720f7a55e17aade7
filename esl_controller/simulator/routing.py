"""Applications that move the call: ``transfer`` and ``bridge``.

``transfer <ext> [dialplan] [context]`` completes at once; the session thread then leaves
the socket app (CHANNEL_UNPARK, the socket's CHANNEL_EXECUTE_COMPLETE) and runs the target
extension while the socket stays connected (trace ``h1``).

``bridge <dial string>`` asks the call's `BridgeTarget` for that dial string: after
``ring_seconds`` the far end answers (CHANNEL_BRIDGE, ``originate_disposition: SUCCESS``)
and hangs up after ``talk_seconds`` (CHANNEL_UNBRIDGE with ``bridge_hangup_cause``, then the
completion; with ``hangup_after_bridge=true`` the channel hangs up too, otherwise it stays up,
trace ``h4``), or it does not answer (``originate_disposition`` USER_BUSY, NO_ANSWER…; the
call stays up).  A caller hangup during the bridge gives CHANNEL_HANGUP, CHANNEL_UNBRIDGE and
then the completion (trace ``h3``).  From the bridge on, every event carries the far end's
``Other-Leg-*`` profile, as in the traces.
"""

from __future__ import annotations

import math
import re
import uuid as uuidlib

from esl_controller.simulator.channel import truthy
from esl_controller.simulator.execution import AppHost, wait_sim
from esl_controller.simulator.records import BridgeAttempt

_DIALSTATUS = {"USER_BUSY": "BUSY", "NO_ANSWER": "NOANSWER", "NO_USER_RESPONSE": "NOANSWER",
               "CALL_REJECTED": "CALL_REJECTED", "ORIGINATOR_CANCEL": "CANCEL"}
_VARS = re.compile(r"^(?:[{\[<][^}\]>]*[}\]>])+")


def transfer(host: AppHost, arg: str) -> None:
    parts = [p for p in arg.split() if not p.startswith("-")]
    if parts:
        host.channel.request_transfer(parts[0], parts[1] if len(parts) > 1 else "XML",
                                      parts[2] if len(parts) > 2 else "default", by=host.origin,
                                      reason="transfer application")
    return None


def _endpoint(dial: str) -> tuple[str, dict[str, str]]:
    match = _VARS.match(dial)
    variables: dict[str, str] = {}
    if match:
        for chunk in re.findall(r"[{\[<]([^}\]>]*)[}\]>]", match.group(0)):
            for pair in chunk.split(","):
                key, _, value = pair.partition("=")
                if key:
                    variables[key.strip()] = value.strip()
    endpoint = dial[match.end():] if match else dial
    return endpoint.split("|")[0].split(",")[0], variables


def _other_leg(host: AppHost, b_uuid: str, endpoint: str, variables: dict[str, str]) -> list[tuple[str, str]]:
    ch = host.channel
    parts = endpoint.split("/")
    destination = parts[1] if parts[0] == "loopback" and len(parts) > 1 else parts[-1]
    now = str(ch.clock.epoch_us())
    caller_number = variables.get("origination_caller_id_number", ch.profile.caller_number)
    caller_name = variables.get("origination_caller_id_name", ch.profile.caller_name)
    fields = [
        ("Direction", "outbound"), ("Logical-Direction", "inbound"), ("Dialplan", "xml"),
        ("Caller-ID-Name", caller_name), ("Caller-ID-Number", caller_number),
        ("Orig-Caller-ID-Name", ch.profile.caller_name), ("Orig-Caller-ID-Number", ch.profile.caller_number),
        ("Callee-ID-Name", "Outbound Call"), ("Callee-ID-Number", "default"), ("ANI", ch.profile.caller_number),
        ("Destination-Number", destination), ("Unique-ID", b_uuid), ("Source", "mod_loopback"),
        ("Context", "default"), ("Channel-Name", f"{endpoint}-a"), ("Profile-Created-Time", now),
        ("Channel-Created-Time", now), ("Channel-Answered-Time", now), ("Channel-Progress-Time", "0"),
        ("Channel-Progress-Media-Time", "0"), ("Channel-Hangup-Time", "0"), ("Channel-Transfer-Time", "0"),
        ("Channel-Resurrect-Time", "0"), ("Channel-Bridged-Time", "0"), ("Channel-Last-Hold", "0"),
        ("Channel-Hold-Accum", "0"), ("Screen-Bit", "true"), ("Privacy-Hide-Name", "false"),
        ("Privacy-Hide-Number", "false"),
    ]
    return [("Other-Type", "originatee"), *((f"Other-Leg-{k}", v) for k, v in fields)]


def bridge(host: AppHost, arg: str) -> None:
    ch, clock = host.channel, host.clock
    dial = arg.strip()
    target = host.bridge_target(dial)
    endpoint, variables = _endpoint(dial)
    b_uuid = str(uuidlib.uuid4())
    wait_sim(host, clock.now() + target.ring_seconds, lambda: not ch.media_ok)
    if not ch.media_ok:
        ch.vars.set("originate_disposition", "ORIGINATOR_CANCEL")
        ch.vars.set("DIALSTATUS", "CANCEL")
        host.bridge_ended(BridgeAttempt(dial, False, "ORIGINATOR_CANCEL"))
        return None
    if not target.answer:
        cause = target.fail_cause
        ch.vars.set("originate_disposition", cause)
        ch.vars.set("DIALSTATUS", _DIALSTATUS.get(cause, cause))
        ch.vars.set("originate_causes", f"{b_uuid};{cause}")
        host.bridge_ended(BridgeAttempt(dial, False, cause))
        return None
    ch.vars.set("originated_legs", f"{b_uuid};Outbound Call;{ch.profile.caller_number}")
    ch.vars.set("originate_disposition", "SUCCESS")
    ch.vars.set("DIALSTATUS", "SUCCESS")
    ch.vars.set("originate_causes", f"{b_uuid};NONE")
    ch.vars.set("signal_bond", b_uuid)
    ch.bridged_us = clock.epoch_us()
    ch.other_leg = _other_leg(host, b_uuid, endpoint, variables)
    ids = [("Bridge-A-Unique-ID", ch.uuid), ("Bridge-B-Unique-ID", b_uuid)]
    ch.emit("CHANNEL_BRIDGE", prefix=ids)
    for key, value in (("bridge_to", b_uuid), ("last_bridge_to", b_uuid), ("bridge_channel", f"{endpoint}-a"),
                       ("bridge_uuid", b_uuid), ("signal_bond", b_uuid), ("last_sent_callee_id_name", "Outbound Call"),
                       ("last_sent_callee_id_number", "default")):
        ch.vars.set(key, value)
    host.bridge_started(dial)
    end = math.inf if target.talk_seconds is None else clock.now() + target.talk_seconds
    while wait_sim(host, end, lambda: bool(ch.dtmf) or not ch.media_ok):
        if not ch.media_ok:
            break
        ch.drain_dtmf()
    far_end_hung_up = ch.media_ok
    cause = target.far_end_cause if far_end_hung_up else (ch.hangup_cause or "NORMAL_CLEARING")
    ch.vars.set("bridge_to", None)
    if far_end_hung_up:
        ch.vars.set("last_bridge_hangup_cause", cause)
    else:
        ch.vars.set("last_bridge_role", "originator")
    ch.vars.set("bridge_hangup_cause", cause)
    ch.emit("CHANNEL_UNBRIDGE", prefix=ids)
    host.bridge_ended(BridgeAttempt(dial, True, "SUCCESS", cause))
    if far_end_hung_up and truthy(ch.vars.get("hangup_after_bridge")):
        ch.hangup("NORMAL_CLEARING", by="bridge")
    return None
