"""The database itself refuses inconsistent rows, whatever code path writes them; and the services
that create rooms, memberships and conversations are idempotent where the contract says so."""
import pytest
from django.db import IntegrityError, transaction

from rooms import services
from rooms.models import Conversation, Membership, Message
from tests import factories

pytestmark = pytest.mark.django_db


# --- Message: exactly one of room and conversation -------------------------------------------


def test_a_message_in_both_a_room_and_a_conversation_is_refused(user, other_user):
    room = factories.make_room(user)
    conversation = factories.make_conversation(user, other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Message(room=room, conversation=conversation, author=user, content="both").save()

    assert not Message.objects.exists()


def test_a_message_in_neither_a_room_nor_a_conversation_is_refused(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Message(author=user, content="nowhere").save()

    assert not Message.objects.exists()


def test_bulk_created_messages_obey_the_same_constraint(user, other_user):
    room = factories.make_room(user)
    conversation = factories.make_conversation(user, other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.bulk_create([Message(room=room, conversation=conversation, author=user, content="both")])

    assert not Message.objects.exists()


def test_a_message_in_a_room_alone_is_stored(user):
    room = factories.make_room(user)

    Message(room=room, author=user, content="here").save()

    assert Message.objects.get().room_id == room.pk


def test_a_message_in_a_conversation_alone_is_stored(user, other_user):
    conversation = factories.make_conversation(user, other_user)

    Message(conversation=conversation, author=user, content="here").save()

    assert Message.objects.get().conversation_id == conversation.pk


# --- Conversation: two distinct users, one conversation per pair ------------------------------


def test_a_conversation_of_a_user_with_themselves_is_refused(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation(user_low=user, user_high=user).save()

    assert not Conversation.objects.exists()


def test_a_bulk_created_conversation_of_a_user_with_themselves_is_refused(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.bulk_create([Conversation(user_low=user, user_high=user)])

    assert not Conversation.objects.exists()


def test_a_second_conversation_for_the_same_pair_is_refused(user, other_user):
    low, high = sorted([user, other_user], key=lambda u: u.pk)
    factories.make_conversation(user, other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.bulk_create([Conversation(user_low=low, user_high=high)])

    assert Conversation.objects.count() == 1


def test_a_second_conversation_for_the_same_pair_in_reversed_order_is_refused(user, other_user):
    """bulk_create skips save(), which would put the pair in order: the check constraint still holds."""
    low, high = sorted([user, other_user], key=lambda u: u.pk)
    factories.make_conversation(user, other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.bulk_create([Conversation(user_low=high, user_high=low)])

    assert Conversation.objects.count() == 1


def test_a_pair_in_reversed_order_is_refused_even_as_the_first_conversation(user, other_user):
    low, high = sorted([user, other_user], key=lambda u: u.pk)

    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.bulk_create([Conversation(user_low=high, user_high=low)])

    assert not Conversation.objects.exists()


def test_saving_a_conversation_puts_the_pair_in_order(user, other_user):
    low, high = sorted([user, other_user], key=lambda u: u.pk)

    conversation = Conversation(user_low=high, user_high=low)
    conversation.save()

    assert Conversation.objects.filter(pk=conversation.pk, user_low=low, user_high=high).exists()


def test_saving_a_second_conversation_in_reversed_order_is_refused(user, other_user):
    low, high = sorted([user, other_user], key=lambda u: u.pk)
    factories.make_conversation(user, other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation(user_low=high, user_high=low).save()

    assert Conversation.objects.count() == 1


def test_the_same_user_may_have_conversations_with_several_others(user, other_user, third_user):
    factories.make_conversation(user, other_user)
    factories.make_conversation(third_user, user)

    assert Conversation.objects.count() == 2


# --- Membership: one per room and user -------------------------------------------------------


def test_a_duplicate_membership_is_refused(user, other_user):
    room = factories.make_room(user, members=(other_user,))

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership(room=room, user=other_user).save()

    assert Membership.objects.filter(room=room, user=other_user).count() == 1


def test_a_duplicate_membership_with_another_role_is_refused(user, other_user):
    room = factories.make_room(user, members=(other_user,))

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.bulk_create([Membership(room=room, user=other_user, role=Membership.Role.ADMIN)])

    assert list(Membership.objects.filter(room=room, user=other_user).values_list("role", flat=True)) == ["member"]


def test_the_same_user_may_belong_to_several_rooms(user, other_user):
    factories.make_room(user, "one", members=(other_user,))
    factories.make_room(user, "two", members=(other_user,))

    assert Membership.objects.filter(user=other_user).count() == 2


# --- services --------------------------------------------------------------------------------


def test_conversation_get_or_create_returns_the_same_conversation_in_either_order(user, other_user):
    first, created = services.conversation_get_or_create(user=user, other=other_user)
    again, created_again = services.conversation_get_or_create(user=other_user, other=user)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Conversation.objects.count() == 1


def test_conversation_get_or_create_stores_the_pair_in_id_order(user, other_user):
    conversation, _ = services.conversation_get_or_create(user=other_user, other=user)

    low, high = sorted([user.pk, other_user.pk])
    assert (conversation.user_low_id, conversation.user_high_id) == (low, high)


def test_membership_add_is_idempotent(user, other_user):
    room = factories.make_room(user)

    first, created = services.membership_add(room=room, user=other_user)
    again, created_again = services.membership_add(room=room, user=other_user, role=Membership.Role.ADMIN)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert again.role == Membership.Role.MEMBER


def test_room_create_makes_the_creator_its_owner(user):
    room = services.room_create(creator=user, name="lobby")

    assert list(room.memberships.values_list("user_id", "role")) == [(user.pk, Membership.Role.OWNER)]


def test_message_create_trims_the_content(user):
    room = factories.make_room(user)

    message = services.message_create(author=user, room=room, content="  hello \n")

    assert Message.objects.get(pk=message.pk).content == "hello"


# --- Message.edited_at ----------------------------------------------------------------------


def test_a_new_message_is_not_edited(user):
    message = factories.make_message(user, room=factories.make_room(user))

    assert Message.objects.get(pk=message.pk).edited_at is None


def test_saving_changed_content_through_the_orm_marks_the_message_edited(user):
    message = Message.objects.get(pk=factories.make_message(user, room=factories.make_room(user)).pk)
    message.content = "changed"

    message.save()

    stored = Message.objects.get(pk=message.pk)
    assert stored.edited_at is not None
    assert stored.edited_at > stored.created_at


def test_saving_the_same_content_does_not_mark_the_message_edited(user):
    message = Message.objects.get(pk=factories.make_message(user, room=factories.make_room(user)).pk)

    message.save()

    assert Message.objects.get(pk=message.pk).edited_at is None


def test_saving_other_fields_only_does_not_mark_the_message_edited(user):
    message = Message.objects.get(pk=factories.make_message(user, room=factories.make_room(user)).pk)
    message.content = "not saved"

    message.save(update_fields=["updated_at"])

    assert Message.objects.get(pk=message.pk).edited_at is None


def test_message_update_with_the_same_trimmed_content_changes_nothing(user):
    message = factories.make_message(user, room=factories.make_room(user), content="same")
    before = Message.objects.get(pk=message.pk)

    services.message_update(message=message, content="  same ")

    after = Message.objects.get(pk=message.pk)
    assert (after.edited_at, after.updated_at) == (None, before.updated_at)


def test_a_second_edit_moves_edited_at_forward(user):
    message = factories.make_message(user, room=factories.make_room(user), content="v1")
    services.message_update(message=message, content="v2")
    first = Message.objects.get(pk=message.pk).edited_at

    services.message_update(message=message, content="v3")

    assert Message.objects.get(pk=message.pk).edited_at > first
