import pytest
from channels.db import database_sync_to_async

from tests import factories
from tests.layer import LayerListener


def test_health(anon, db):
    response = anon.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


@pytest.mark.django_db(transaction=True)
async def test_message_new_reaches_layer():
    def setup():
        ada = factories.make_user("ada")
        return ada, factories.make_room(ada)

    ada, room = await database_sync_to_async(setup)()
    async with LayerListener(f"room:{room.pk}") as listener:
        message = await database_sync_to_async(factories.make_message)(ada, room=room)
        event = await listener.next_event()
        assert event["type"] == "message:new"
        assert event["data"]["id"] == f"msg_{message.pk}"
        sentinel = await database_sync_to_async(factories.make_message)(ada, room=room, content="sentinel")
        assert (await listener.next_event())["data"]["id"] == f"msg_{sentinel.pk}"  # nothing came in between
