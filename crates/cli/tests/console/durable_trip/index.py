"""A small durable function for the console's browser test (console.rs).

A step, a child context holding two steps, a one-second wait (so the
execution runs in two invocations) and a last step: the console draws its
operation tree (the steps of `bookings` under it) and the invocations on a
timeline.
"""

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration


@durable_execution
def lambda_handler(event: dict, context: DurableContext) -> dict:
    trip = context.step(lambda _: {"trip_id": event.get("trip_id", "trip")}, name="plan")

    def book(c: DurableContext) -> dict:
        hotel = c.step(lambda _: f"hotel-{trip['trip_id']}", name="book-hotel")
        flight = c.step(lambda _: f"flight-{trip['trip_id']}", name="book-flight")
        return {"hotel": hotel, "flight": flight}

    bookings = context.run_in_child_context(book, name="bookings")
    context.wait(Duration.from_seconds(1), name="settle")
    receipt = context.step(lambda _: {"booked": sorted(bookings)}, name="receipt")
    return {"trip": trip, "bookings": bookings, "receipt": receipt}
