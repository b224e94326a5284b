"""progress/publisher.py on the real Redis pub/sub layer: a message is recorded and published
to both of its groups in one transaction, and a subscriber that hears it finds it logged."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.layers import get_channel_layer

from generations import messages as m
from generations.store import async_redis, log_key, state_key
from progress.groups import firehose_group, generation_group
from progress.monitor import layer_on_our_redis
from progress.publisher import Publisher, group_channels


def message(gid: str, seq: int) -> m.Message:
    return {
        "type": m.PROGRESS,
        "generationId": gid,
        "seq": seq,
        "timestamp": "",
        "data": {"progress": {"value": seq, "max": 20}},  # type: ignore[typeddict-item]
    }


@pytest.mark.asyncio
async def test_a_message_is_logged_before_either_group_hears_it() -> None:
    layer, redis, gid = get_channel_layer(), async_redis(), str(uuid.uuid4())
    assert layer_on_our_redis()  # the test settings' layer is the product's
    publisher = Publisher(layer, redis, state_ttl=60, preview_ttl=60, same_redis=True)
    assert publisher.group_channel is not None  # the one-transaction path
    channels = {}
    for group in (generation_group(gid), firehose_group()):
        channels[group] = await layer.new_channel()
        await layer.group_add(group, channels[group])
    try:
        for seq in (1, 2):
            await publisher.publish(message(gid, seq), owner_id=7)
            for channel in channels.values():
                event = await asyncio.wait_for(layer.receive(channel), timeout=5)
                assert (event["generation_id"], event["seq"], event["owner_id"]) == (gid, seq, 7)
                logged = await redis.lrange(log_key(gid), 0, -1)
                assert json.loads(logged[-1])["seq"] == seq  # already there when heard
        assert json.loads(await redis.get(state_key(gid)))["seq"] == 2
    finally:
        for group, channel in channels.items():
            await layer.group_discard(group, channel)
        await redis.delete(log_key(gid), state_key(gid))


def test_any_other_layer_takes_its_own_group_send() -> None:
    from channels.layers import InMemoryChannelLayer

    assert group_channels(InMemoryChannelLayer()) is None
