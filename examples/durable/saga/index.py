"""The travel saga as a Lambda durable function.

Sagaflow's own rendition of the orchestrator of the aws-samples saga pattern
with Lambda durable functions (serverless-patterns,
saga-pattern-lambda-durable-functions, MIT-0): it reserves a flight, a hotel
and a car by invoking one function each, and when one of them fails it
cancels what was reserved, newest first, then fails the execution with the
details. The operation names, payload fields, defaults, result and error
text are the sample's, so an execution gives the same result on Sagaflow as
on AWS.

Everything that differs between replays (the ids, today's date) is made
inside the ``generate-ids`` step, whose checkpointed result every replay
reads back; the invokes are durable operations, so a replay never calls a
service twice.
"""

import datetime
import json
import os
import uuid

from aws_durable_execution_sdk_python import DurableContext, durable_execution

# The services' function names; the defaults are the sample's.
RESERVE_FLIGHT_FUNCTION = os.environ.get("RESERVE_FLIGHT_FUNCTION", "saga-reserve-flight")
CANCEL_FLIGHT_FUNCTION = os.environ.get("CANCEL_FLIGHT_FUNCTION", "saga-cancel-flight")
RESERVE_HOTEL_FUNCTION = os.environ.get("RESERVE_HOTEL_FUNCTION", "saga-reserve-hotel")
CANCEL_HOTEL_FUNCTION = os.environ.get("CANCEL_HOTEL_FUNCTION", "saga-cancel-hotel")
RESERVE_CAR_FUNCTION = os.environ.get("RESERVE_CAR_FUNCTION", "saga-reserve-car")
CANCEL_CAR_FUNCTION = os.environ.get("CANCEL_CAR_FUNCTION", "saga-cancel-car")


def generate_ids(_step_context) -> dict:
    """The values that must not change on replay: run once, checkpointed."""
    return {
        "transaction_id": str(uuid.uuid4()),
        "booking_id": str(uuid.uuid4()),
        "reservation_id": str(uuid.uuid4()),
        "rental_id": str(uuid.uuid4()),
        "flight_number_suffix": uuid.uuid4().hex[:6].upper(),
        "today": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
    }


def flight_request(event: dict, ids: dict) -> dict:
    return {
        "bookingId": ids["booking_id"],
        "passengerName": event.get("passengerName", "John Doe"),
        "flightNumber": event.get("flightNumber", f"FL{ids['flight_number_suffix']}"),
        "departure": event.get("departure", "JFK"),
        "destination": event.get("destination", "LAX"),
        "price": event.get("flightPrice", 299.99),
        "failBookFlight": event.get("failBookFlight", False),
    }


def hotel_request(event: dict, ids: dict) -> dict:
    return {
        "reservationId": ids["reservation_id"],
        "guestName": event.get("guestName", "John Doe"),
        "hotelName": event.get("hotelName", "Grand Hotel"),
        "roomType": event.get("roomType", "Deluxe Suite"),
        "checkIn": event.get("checkIn", ids["today"]),
        "checkOut": event.get("checkOut", ids["today"]),
        "price": event.get("hotelPrice", 199.99),
        "failBookHotel": event.get("failBookHotel", False),
    }


def car_request(event: dict, ids: dict) -> dict:
    return {
        "rentalId": ids["rental_id"],
        "driverName": event.get("driverName", "John Doe"),
        "carType": event.get("carType", "Sedan"),
        "pickupLocation": event.get("pickupLocation", "Airport"),
        "dropoffLocation": event.get("dropoffLocation", "Airport"),
        "pickupDate": event.get("pickupDate", ids["today"]),
        "dropoffDate": event.get("dropoffDate", ids["today"]),
        "price": event.get("carPrice", 89.99),
        "failBookCar": event.get("failBookCar", False),
    }


# The legs in booking order: (service, id field, request builder, reserve
# function, cancel function). Compensation walks them backwards.
LEGS = [
    ("flight", "bookingId", flight_request, RESERVE_FLIGHT_FUNCTION, CANCEL_FLIGHT_FUNCTION),
    ("hotel", "reservationId", hotel_request, RESERVE_HOTEL_FUNCTION, CANCEL_HOTEL_FUNCTION),
    ("car", "rentalId", car_request, RESERVE_CAR_FUNCTION, CANCEL_CAR_FUNCTION),
]


def compensate(context: DurableContext, reserved: list) -> list:
    """Cancels what was reserved, newest first; a failed cancellation is
    recorded and the others still run."""
    results = []
    for service, id_field, booking_id, cancel_function in reversed(reserved):
        try:
            context.logger.info(f"Compensating: cancelling {service} {booking_id}")
            context.invoke(
                function_name=cancel_function,
                payload={id_field: booking_id},
                name=f"cancel_{service}_invocation",
            )
            results.append({service: "cancelled", id_field: booking_id})
        except Exception as cancel_error:
            context.logger.error(f"Failed to cancel {service}: {cancel_error}")
            results.append({service: "cancellation_failed", "error": str(cancel_error)})
    return results


@durable_execution
def lambda_handler(event: dict, context: DurableContext) -> dict:
    """Reserves flight, hotel and car; compensates and fails on any error."""
    context.logger.info("Saga workflow started")
    ids = context.step(generate_ids, name="generate-ids")
    transaction_id = ids["transaction_id"]

    # (service, id field, id, cancel function) of each reservation made.
    reserved = []
    try:
        for service, id_field, request, reserve_function, cancel_function in LEGS:
            context.logger.info(f"Reserving {service}...")
            result = context.invoke(
                function_name=reserve_function,
                payload=request(event, ids),
                name=f"reserve_{service}_invocation",
            )
            booking_id = result.get(id_field)
            if booking_id:
                reserved.append((service, id_field, booking_id, cancel_function))
            context.logger.info(f"{service} reserved: {booking_id}")
    except Exception as error:
        context.logger.error(f"Error in saga workflow: {error}")
        context.logger.info("Starting compensation (rollback) process...")
        compensations = compensate(context, reserved)
        context.logger.info("Compensation process completed")
        details = {
            "transactionId": transaction_id,
            "originalError": str(error),
            "compensations": compensations,
            "message": f"Transaction failed and rolled back: {error}",
        }
        raise Exception(
            "Saga transaction failed and compensated. Details: " + json.dumps(details)
        )

    context.logger.info("All reservations completed successfully!")
    bookings = {service: booking_id for service, _, booking_id, _ in reserved}
    return {
        "success": True,
        "transactionId": transaction_id,
        "message": "All travel arrangements completed successfully",
        "bookings": {
            "flight": bookings.get("flight"),
            "hotel": bookings.get("hotel"),
            "car": bookings.get("car"),
        },
    }
