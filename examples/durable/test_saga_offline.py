"""Offline check of saga/index.py with the durable SDK's own local runner.

Runs the orchestrator on aws-durable-execution-sdk-python-testing's
in-process service, with plain Python stand-ins for the six saga-* service
functions (the contract the travel services serve under /lambda/saga-*),
for each input in inputs/. No Sagaflow, no network.

    pip install aws-durable-execution-sdk-python aws-durable-execution-sdk-python-testing
    python examples/durable/test_saga_offline.py

Skipped when the testing package is not installed.
"""

import json
import pathlib
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "saga"))

try:
    from aws_durable_execution_sdk_python.execution import InvocationStatus
    from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

    import index
except ImportError as missing:  # pragma: no cover - depends on the host
    DurableFunctionTestRunner = None
    MISSING = str(missing)

PREFIX = "Saga transaction failed and compensated. Details: "


def unwrap(value):
    """A step result as the SDK checkpoints it (typed `{"t", "v"}` nodes, `m`
    for a dict) back to plain JSON values; plain JSON is left as it is."""
    if isinstance(value, dict) and set(value) == {"t", "v"}:
        inner = value["v"]
        if value["t"] == "m":
            return {key: unwrap(item) for key, item in inner.items()}
        if isinstance(inner, list):
            return [unwrap(item) for item in inner]
        return inner
    return value


class Services:
    """The six functions, over dicts: what the travel services do."""

    FAILURES = {
        "flight": "Simulated flight booking failure for testing saga compensation",
        "hotel": "Simulated hotel reservation failure for testing saga compensation",
        "car": "Simulated car rental failure for testing saga compensation",
    }
    SHAPES = {
        "flight": ("bookingId", "failBookFlight", "Booking", ["flightNumber"]),
        "hotel": ("reservationId", "failBookHotel", "Reservation", ["hotelName", "roomType"]),
        "car": ("rentalId", "failBookCar", "Rental", ["carType"]),
    }

    def __init__(self):
        self.records = {}
        self.calls = []

    def reserve(self, service):
        id_field, flag, _, answered = self.SHAPES[service]

        def handler(event, _context):
            self.calls.append(f"reserve_{service}")
            if event.get(flag):
                raise RuntimeError(self.FAILURES[service])
            self.records[event[id_field]] = "RESERVED"
            answer = {id_field: event[id_field]}
            answer.update({field: event[field] for field in answered})
            answer.update({"status": "RESERVED", "price": float(event["price"])})
            return answer

        return handler

    def cancel(self, service):
        id_field, _, noun, _ = self.SHAPES[service]

        def handler(event, _context):
            self.calls.append(f"cancel_{service}")
            booking_id = event.get(id_field)
            if not booking_id:
                raise ValueError(f"{id_field} is required")
            if booking_id not in self.records:
                raise LookupError(f"{noun} {booking_id} not found")
            self.records[booking_id] = "CANCELLED"
            return {id_field: booking_id, "status": "CANCELLED"}

        return handler


@unittest.skipIf(DurableFunctionTestRunner is None, "the durable SDK testing package is missing")
class SagaOffline(unittest.TestCase):
    def run_saga(self, name):
        services = Services()
        payload = (HERE / "inputs" / f"{name}.json").read_text()
        with DurableFunctionTestRunner(handler=index.lambda_handler, region="us-east-1") as runner:
            for service in ("flight", "hotel", "car"):
                runner.register_function(f"saga-reserve-{service}", services.reserve(service))
                runner.register_function(f"saga-cancel-{service}", services.cancel(service))
            result = runner.run(input=payload, execution_timeout=60, function_name="saga-durable-function")
        return result, services

    def failure_details(self, result):
        self.assertEqual(result.status, InvocationStatus.FAILED)
        self.assertEqual(result.error.type, "Exception")
        self.assertTrue(result.error.message.startswith(PREFIX), result.error.message)
        return json.loads(result.error.message[len(PREFIX):])

    def ids(self, result):
        """The generate-ids step's checkpointed result."""
        return unwrap(json.loads(result.get_step("generate-ids").result))

    def test_success_books_all_three_with_the_generated_ids(self):
        result, services = self.run_saga("success")
        self.assertEqual(result.status, InvocationStatus.SUCCEEDED)
        ids = self.ids(result)
        self.assertEqual(
            json.loads(result.result),
            {
                "success": True,
                "transactionId": ids["transaction_id"],
                "message": "All travel arrangements completed successfully",
                "bookings": {
                    "flight": ids["booking_id"],
                    "hotel": ids["reservation_id"],
                    "car": ids["rental_id"],
                },
            },
        )
        self.assertEqual(services.calls, ["reserve_flight", "reserve_hotel", "reserve_car"])
        self.assertEqual(set(services.records.values()), {"RESERVED"})

    def test_a_failed_flight_compensates_nothing(self):
        result, services = self.run_saga("fail-flight-booking")
        details = self.failure_details(result)
        self.assertEqual(details["originalError"], Services.FAILURES["flight"])
        self.assertEqual(details["compensations"], [])
        self.assertEqual(details["transactionId"], self.ids(result)["transaction_id"])
        self.assertEqual(
            details["message"],
            "Transaction failed and rolled back: " + Services.FAILURES["flight"],
        )
        self.assertEqual(services.calls, ["reserve_flight"])
        failed = result.get_invoke("reserve_flight_invocation")
        self.assertEqual(failed.error.type, "RuntimeError")
        self.assertEqual(failed.error.message, Services.FAILURES["flight"])

    def test_a_failed_hotel_cancels_the_flight(self):
        result, services = self.run_saga("fail-hotel-booking")
        details = self.failure_details(result)
        booking_id = self.ids(result)["booking_id"]
        self.assertEqual(details["originalError"], Services.FAILURES["hotel"])
        self.assertEqual(details["compensations"], [{"flight": "cancelled", "bookingId": booking_id}])
        self.assertEqual(services.calls, ["reserve_flight", "reserve_hotel", "cancel_flight"])
        self.assertEqual(services.records, {booking_id: "CANCELLED"})

    def test_a_failed_car_cancels_the_hotel_then_the_flight(self):
        result, services = self.run_saga("fail-car-booking")
        details = self.failure_details(result)
        ids = self.ids(result)
        self.assertEqual(details["originalError"], Services.FAILURES["car"])
        self.assertEqual(
            details["compensations"],
            [
                {"hotel": "cancelled", "reservationId": ids["reservation_id"]},
                {"flight": "cancelled", "bookingId": ids["booking_id"]},
            ],
        )
        self.assertEqual(
            services.calls,
            ["reserve_flight", "reserve_hotel", "reserve_car", "cancel_hotel", "cancel_flight"],
        )
        names = [op.name for op in result.operations]
        self.assertEqual(
            names,
            [
                "generate-ids",
                "reserve_flight_invocation",
                "reserve_hotel_invocation",
                "reserve_car_invocation",
                "cancel_hotel_invocation",
                "cancel_flight_invocation",
            ],
        )


if __name__ == "__main__":
    unittest.main()
