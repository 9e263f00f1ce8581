"""The exact bytes of rendered receipts: order node → Receipt → each dialect's reply and the push params.

Pinned before the receipt mapping and rendering were made cheaper (one validation per receipt, the reply read off the
models' field dicts instead of `model_dump`): any change to field order, int/float choice, omitted keys or the closed
word shows here as a byte difference.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import jsoncodec
from gateway.dialects import JoinChatCodec, MeetbotCodec
from gateway.dialects.base import package_dict
from gateway.lookups.types import OrdersByNumber, OrdersResult
from mappings.models import Package
from mappings.push import receipt_push_params
from mappings.receipt import order_to_receipt, receipt_fields
from tests.test_mappings_pure import allocation, bag, line, order

V1 = JoinChatCodec(1)
V2 = JoinChatCodec(2)
MB = MeetbotCodec()


def _order_1001() -> dict[str, Any]:
    """Order #1001 of the local store as the `orders` lookup reads it (3 line items, one discount code)."""
    lines = [
        line(1, "IPod Nano - 8gb", "199.00", variantTitle="Green", discountAllocations=[allocation(0, "4.54")]),
        line(2, "IPod Nano - 8gb", "199.00", variantTitle="Black", discountAllocations=[allocation(0, "4.54")]),
        line(3, "Classic T-Shirt", "19.99", 2, variantTitle="M", discountAllocations=[allocation(0, "0.92")]),
    ]
    return order(
        lines=lines,
        name="#1001",
        createdAt="2026-10-03T03:21:55Z",
        paymentGatewayNames=["bogus"],
        billingAddress={"name": "Bob Norman"},
        shippingAddress={
            "name": "Bob Norman",
            "address1": "Chestnut Street 92",
            "address2": None,
            "city": "Louisville",
            "zip": "40202",
            "provinceCode": "KY",
            "countryCodeV2": "US",
        },
        subtotalPriceSet=bag("427.98"),
        totalShippingPriceSet=bag("0.00"),
        totalTaxSet=bag("34.24"),
        totalPriceSet=bag("462.22"),
        discountApplications={"nodes": [{"index": 0, "code": "TENOFF"}]},
        shippingLines={"nodes": [{"discountAllocations": []}]},
        transactions=[
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": "bogus",
                "paymentDetails": {"company": "Visa", "number": "•••• •••• •••• 4242"},
            }
        ],
    )


#: name → (order node, mask_personal)
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "order_1001": (_order_1001(), False),
    "three_discounts": (order(), False),
    "closed_no_address": (
        order(closed=True, shippingAddress=None, transactions=[], discountApplications={"nodes": []}),
        False,
    ),
    "cancelled_masked_jpy": (
        order(
            cancelledAt="2024-05-01T00:00:00Z",
            presentmentCurrencyCode="JPY",
            totalPriceSet={"presentmentMoney": {"amount": "4538.0"}},
            shippingAddress={"name": "Jane Doe", "address1": "1 Main St", "address2": "Unit 2", "city": "Ottawa"},
        ),
        True,
    ),
    "unpaid_kwd_sparse": (
        order(
            displayFinancialStatus="PENDING",
            presentmentCurrencyCode=None,
            currencyCode="KWD",
            statusPageUrl=None,
            createdAt=None,
            billingAddress=None,
            customer=None,
            shippingAddress={"address1": None},
            subtotalPriceSet=None,
            totalTaxSet={"presentmentMoney": None},
            totalPriceSet=bag("1.2345"),
            lines=[line(1, "Dates", "2.5", 4, image={"url": None}), {"title": None, "quantity": None}],
            discountApplications={"edges": [{"node": {"index": 0}}]},
        ),
        False,
    ),
}


def rendered(name: str) -> list[tuple[str, bytes]]:
    node, mask = CASES[name]
    receipt = order_to_receipt(node, mask_personal=mask)
    query = OrdersByNumber("1001")
    result = OrdersResult([receipt], False, 1)
    return [
        ("joinchat v1", V1.render(query, result)),
        ("joinchat v2", V2.render(query, result)),
        ("meetbot", MB.render(query, result)),
        ("push params", jsoncodec.dumps(receipt_push_params(receipt))),
        ("repr", repr(receipt).encode()),
    ]


EXPECTED: dict[str, tuple[bytes, ...]] = {
    'order_1001': (
        # joinchat v1
        b'{"success":true,"has_next_page":false,"orders":[{"recipient_name":"Bob Norman","order_number":"1001"'
        b',"currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/orders/abc","timest'
        b'amp":"1790997715","status":"open","address":{"street_1":"Chestnut Street 92","street_2":"","city":"L'
        b'ouisville","postal_code":"40202","state":"KY","country":"US"},"summary":{"subtotal":427.98,"shipping'
        b'_cost":0.0,"total_tax":34.24,"total_cost":462.22},"adjustments":[{"name":"TENOFF","amount":10.0}],"e'
        b'lements":[{"title":"IPod Nano - 8gb","subtitle":"Green","quantity":1,"price":199.0,"currency":"USD",'
        b'"image_url":"https://cdn.example/1.png"},{"title":"IPod Nano - 8gb","subtitle":"Black","quantity":1,'
        b'"price":199.0,"currency":"USD","image_url":"https://cdn.example/2.png"},{"title":"Classic T-Shirt","'
        b'subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/3.png"}]}'
        b']}',
        # joinchat v2
        b'{"success":true,"total":1,"data":[{"template_type":"receipt","recipient_name":"Bob Norman","order_nu'
        b'mber":"1001","currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/orders/'
        b'abc","timestamp":"1790997715","address":{"street_1":"Chestnut Street 92","street_2":"","city":"Louis'
        b'ville","postal_code":"40202","state":"KY","country":"US"},"summary":{"subtotal":427.98,"shipping_cos'
        b't":0.0,"total_tax":34.24,"total_cost":462.22},"adjustments":[{"name":"TENOFF","amount":10.0}],"eleme'
        b'nts":[{"title":"IPod Nano - 8gb","subtitle":"Green","quantity":1,"price":199.0,"currency":"USD","ima'
        b'ge_url":"https://cdn.example/1.png"},{"title":"IPod Nano - 8gb","subtitle":"Black","quantity":1,"pri'
        b'ce":199.0,"currency":"USD","image_url":"https://cdn.example/2.png"},{"title":"Classic T-Shirt","subt'
        b'itle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/3.png"}]}]}',
        # meetbot
        b'{"success":true,"object":"orders","has_next_page":false,"orders":[{"recipient_name":"Bob Norman","or'
        b'der_number":"1001","currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/o'
        b'rders/abc","timestamp":"1790997715","status":"open","address":{"street_1":"Chestnut Street 92","stre'
        b'et_2":"","city":"Louisville","postal_code":"40202","state":"KY","country":"US"},"summary":{"subtotal'
        b'":427.98,"shipping_cost":0.0,"total_tax":34.24,"total_cost":462.22},"adjustments":[{"name":"TENOFF",'
        b'"amount":10.0}],"elements":[{"title":"IPod Nano - 8gb","subtitle":"Green","quantity":1,"price":199.0'
        b',"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"IPod Nano - 8gb","subtitle":"Bl'
        b'ack","quantity":1,"price":199.0,"currency":"USD","image_url":"https://cdn.example/2.png"},{"title":"'
        b'Classic T-Shirt","subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn'
        b'.example/3.png"}]}]}',
        # push params
        b'{"recipient_name":"Bob Norman","order_number":"1001","currency":"USD","payment_method":"Visa 4242","'
        b'order_url":"https://shop.example/orders/abc","timestamp":1790997715,"address":{"street_1":"Chestnut '
        b'Street 92","street_2":"","city":"Louisville","postal_code":"40202","state":"KY","country":"US"},"sum'
        b'mary":{"subtotal":427.98,"shipping_cost":0.0,"total_tax":34.24,"total_cost":462.22},"adjustments":[{'
        b'"name":"TENOFF","amount":10.0}],"elements":[{"title":"IPod Nano - 8gb","subtitle":"Green","quantity"'
        b':1,"price":199.0,"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"IPod Nano - 8gb'
        b'","subtitle":"Black","quantity":1,"price":199.0,"currency":"USD","image_url":"https://cdn.example/2.'
        b'png"},{"title":"Classic T-Shirt","subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_u'
        b'rl":"https://cdn.example/3.png"}]}',
        # repr
        b"Receipt(recipient_name='Bob Norman', order_number='1001', currency='USD', payment_method='Visa 4242'"
        b", order_url='https://shop.example/orders/abc', timestamp='1790997715', status='open', address=Receip"
        b"tAddress(street_1='Chestnut Street 92', street_2='', city='Louisville', postal_code='40202', state='"
        b"KY', country='US'), summary=ReceiptSummary(subtotal=427.98, shipping_cost=0.0, total_tax=34.24, tota"
        b"l_cost=462.22), adjustments=[Adjustment(name='TENOFF', amount=10.0)], elements=[ReceiptElement(title"
        b"='IPod Nano - 8gb', subtitle='Green', quantity=1, price=199.0, currency='USD', image_url='https://cd"
        b"n.example/1.png'), ReceiptElement(title='IPod Nano - 8gb', subtitle='Black', quantity=1, price=199.0"
        b", currency='USD', image_url='https://cdn.example/2.png'), ReceiptElement(title='Classic T-Shirt', su"
        b"btitle='M', quantity=2, price=19.99, currency='USD', image_url='https://cdn.example/3.png')])",
    ),
    'three_discounts': (
        # joinchat v1
        b'{"success":true,"has_next_page":false,"orders":[{"recipient_name":"Jane Doe","order_number":"1001","'
        b'currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/orders/abc","timestam'
        b'p":"1714174200","status":"open","address":{"street_1":"1 Main St","street_2":"","city":"Ottawa","pos'
        b'tal_code":"K2P 1L4","state":"ON","country":"CA"},"summary":{"subtotal":40.08,"shipping_cost":5.0,"to'
        b'tal_tax":0.3,"total_cost":45.38},"adjustments":[{"name":"SAVE4","amount":4.0},{"name":"Bulk socks","'
        b'amount":0.2},{"name":"Free ship","amount":5.0}],"elements":[{"title":"Classic T-Shirt","subtitle":"M'
        b'","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"Soc'
        b'ks","subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # joinchat v2
        b'{"success":true,"total":1,"data":[{"template_type":"receipt","recipient_name":"Jane Doe","order_numb'
        b'er":"1001","currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/orders/ab'
        b'c","timestamp":"1714174200","address":{"street_1":"1 Main St","street_2":"","city":"Ottawa","postal_'
        b'code":"K2P 1L4","state":"ON","country":"CA"},"summary":{"subtotal":40.08,"shipping_cost":5.0,"total_'
        b'tax":0.3,"total_cost":45.38},"adjustments":[{"name":"SAVE4","amount":4.0},{"name":"Bulk socks","amou'
        b'nt":0.2},{"name":"Free ship","amount":5.0}],"elements":[{"title":"Classic T-Shirt","subtitle":"M","q'
        b'uantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"Socks",'
        b'"subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # meetbot
        b'{"success":true,"object":"orders","has_next_page":false,"orders":[{"recipient_name":"Jane Doe","orde'
        b'r_number":"1001","currency":"USD","payment_method":"Visa 4242","order_url":"https://shop.example/ord'
        b'ers/abc","timestamp":"1714174200","status":"open","address":{"street_1":"1 Main St","street_2":"","c'
        b'ity":"Ottawa","postal_code":"K2P 1L4","state":"ON","country":"CA"},"summary":{"subtotal":40.08,"ship'
        b'ping_cost":5.0,"total_tax":0.3,"total_cost":45.38},"adjustments":[{"name":"SAVE4","amount":4.0},{"na'
        b'me":"Bulk socks","amount":0.2},{"name":"Free ship","amount":5.0}],"elements":[{"title":"Classic T-Sh'
        b'irt","subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.p'
        b'ng"},{"title":"Socks","subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # push params
        b'{"recipient_name":"Jane Doe","order_number":"1001","currency":"USD","payment_method":"Visa 4242","or'
        b'der_url":"https://shop.example/orders/abc","timestamp":1714174200,"address":{"street_1":"1 Main St",'
        b'"street_2":"","city":"Ottawa","postal_code":"K2P 1L4","state":"ON","country":"CA"},"summary":{"subto'
        b'tal":40.08,"shipping_cost":5.0,"total_tax":0.3,"total_cost":45.38},"adjustments":[{"name":"SAVE4","a'
        b'mount":4.0},{"name":"Bulk socks","amount":0.2},{"name":"Free ship","amount":5.0}],"elements":[{"titl'
        b'e":"Classic T-Shirt","subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https:/'
        b'/cdn.example/1.png"},{"title":"Socks","subtitle":"","quantity":3,"price":0.1,"currency":"USD","image'
        b'_url":""}]}',
        # repr
        b"Receipt(recipient_name='Jane Doe', order_number='1001', currency='USD', payment_method='Visa 4242', "
        b"order_url='https://shop.example/orders/abc', timestamp='1714174200', status='open', address=ReceiptA"
        b"ddress(street_1='1 Main St', street_2='', city='Ottawa', postal_code='K2P 1L4', state='ON', country="
        b"'CA'), summary=ReceiptSummary(subtotal=40.08, shipping_cost=5.0, total_tax=0.3, total_cost=45.38), a"
        b"djustments=[Adjustment(name='SAVE4', amount=4.0), Adjustment(name='Bulk socks', amount=0.2), Adjustm"
        b"ent(name='Free ship', amount=5.0)], elements=[ReceiptElement(title='Classic T-Shirt', subtitle='M', "
        b"quantity=2, price=19.99, currency='USD', image_url='https://cdn.example/1.png'), ReceiptElement(titl"
        b"e='Socks', subtitle='', quantity=3, price=0.1, currency='USD', image_url='')])",
    ),
    'closed_no_address': (
        # joinchat v1
        b'{"success":true,"has_next_page":false,"orders":[{"recipient_name":"Bill Payer","order_number":"1001"'
        b',"currency":"USD","payment_method":"shopify_payments","order_url":"https://shop.example/orders/abc",'
        b'"timestamp":"1714174200","status":"closed","summary":{"subtotal":40.08,"shipping_cost":5.0,"total_ta'
        b'x":0.3,"total_cost":45.38},"adjustments":[],"elements":[{"title":"Classic T-Shirt","subtitle":"M","q'
        b'uantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"Socks",'
        b'"subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # joinchat v2
        b'{"success":true,"total":1,"data":[{"template_type":"receipt","recipient_name":"Bill Payer","order_nu'
        b'mber":"1001","currency":"USD","payment_method":"shopify_payments","order_url":"https://shop.example/'
        b'orders/abc","timestamp":"1714174200","summary":{"subtotal":40.08,"shipping_cost":5.0,"total_tax":0.3'
        b',"total_cost":45.38},"adjustments":[],"elements":[{"title":"Classic T-Shirt","subtitle":"M","quantit'
        b'y":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.png"},{"title":"Socks","subti'
        b'tle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # meetbot
        b'{"success":true,"object":"orders","has_next_page":false,"orders":[{"recipient_name":"Bill Payer","or'
        b'der_number":"1001","currency":"USD","payment_method":"shopify_payments","order_url":"https://shop.ex'
        b'ample/orders/abc","timestamp":"1714174200","status":"past","summary":{"subtotal":40.08,"shipping_cos'
        b't":5.0,"total_tax":0.3,"total_cost":45.38},"adjustments":[],"elements":[{"title":"Classic T-Shirt","'
        b'subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.example/1.png"},{'
        b'"title":"Socks","subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":""}]}]}',
        # push params
        b'{"recipient_name":"Bill Payer","order_number":"1001","currency":"USD","payment_method":"shopify_paym'
        b'ents","order_url":"https://shop.example/orders/abc","timestamp":1714174200,"summary":{"subtotal":40.'
        b'08,"shipping_cost":5.0,"total_tax":0.3,"total_cost":45.38},"adjustments":[],"elements":[{"title":"Cl'
        b'assic T-Shirt","subtitle":"M","quantity":2,"price":19.99,"currency":"USD","image_url":"https://cdn.e'
        b'xample/1.png"},{"title":"Socks","subtitle":"","quantity":3,"price":0.1,"currency":"USD","image_url":'
        b'""}]}',
        # repr
        b"Receipt(recipient_name='Bill Payer', order_number='1001', currency='USD', payment_method='shopify_pa"
        b"yments', order_url='https://shop.example/orders/abc', timestamp='1714174200', status='closed', addre"
        b'ss=None, summary=ReceiptSummary(subtotal=40.08, shipping_cost=5.0, total_tax=0.3, total_cost=45.38),'
        b" adjustments=[], elements=[ReceiptElement(title='Classic T-Shirt', subtitle='M', quantity=2, price=1"
        b"9.99, currency='USD', image_url='https://cdn.example/1.png'), ReceiptElement(title='Socks', subtitle"
        b"='', quantity=3, price=0.1, currency='USD', image_url='')])",
    ),
    'cancelled_masked_jpy': (
        # joinchat v1
        b'{"success":true,"has_next_page":false,"orders":[{"recipient_name":"J*** D***","order_number":"1001",'
        b'"currency":"JPY","payment_method":"Visa 4242","order_url":"https://shop.example/orders/abc","timesta'
        b'mp":"1714174200","status":"cancelled","address":{"street_1":"***","street_2":"***","city":"Ottawa","'
        b'postal_code":"","state":"","country":""},"summary":{"subtotal":40,"shipping_cost":5,"total_tax":0,"t'
        b'otal_cost":4538},"adjustments":[{"name":"SAVE4","amount":4},{"name":"Bulk socks","amount":0},{"name"'
        b':"Free ship","amount":5}],"elements":[{"title":"Classic T-Shirt","subtitle":"M","quantity":2,"price"'
        b':20,"currency":"JPY","image_url":"https://cdn.example/1.png"},{"title":"Socks","subtitle":"","quanti'
        b'ty":3,"price":0,"currency":"JPY","image_url":""}]}]}',
        # joinchat v2
        b'{"success":true,"total":1,"data":[{"template_type":"receipt","recipient_name":"J*** D***","order_num'
        b'ber":"1001","currency":"JPY","payment_method":"Visa 4242","order_url":"https://shop.example/orders/a'
        b'bc","timestamp":"1714174200","address":{"street_1":"***","street_2":"***","city":"Ottawa","postal_co'
        b'de":"","state":"","country":""},"summary":{"subtotal":40,"shipping_cost":5,"total_tax":0,"total_cost'
        b'":4538},"adjustments":[{"name":"SAVE4","amount":4},{"name":"Bulk socks","amount":0},{"name":"Free sh'
        b'ip","amount":5}],"elements":[{"title":"Classic T-Shirt","subtitle":"M","quantity":2,"price":20,"curr'
        b'ency":"JPY","image_url":"https://cdn.example/1.png"},{"title":"Socks","subtitle":"","quantity":3,"pr'
        b'ice":0,"currency":"JPY","image_url":""}]}]}',
        # meetbot
        b'{"success":true,"object":"orders","has_next_page":false,"orders":[{"recipient_name":"J*** D***","ord'
        b'er_number":"1001","currency":"JPY","payment_method":"Visa 4242","order_url":"https://shop.example/or'
        b'ders/abc","timestamp":"1714174200","status":"cancelled","address":{"street_1":"***","street_2":"***"'
        b',"city":"Ottawa","postal_code":"","state":"","country":""},"summary":{"subtotal":40,"shipping_cost":'
        b'5,"total_tax":0,"total_cost":4538},"adjustments":[{"name":"SAVE4","amount":4},{"name":"Bulk socks","'
        b'amount":0},{"name":"Free ship","amount":5}],"elements":[{"title":"Classic T-Shirt","subtitle":"M","q'
        b'uantity":2,"price":20,"currency":"JPY","image_url":"https://cdn.example/1.png"},{"title":"Socks","su'
        b'btitle":"","quantity":3,"price":0,"currency":"JPY","image_url":""}]}]}',
        # push params
        b'{"recipient_name":"J*** D***","order_number":"1001","currency":"JPY","payment_method":"Visa 4242","o'
        b'rder_url":"https://shop.example/orders/abc","timestamp":1714174200,"address":{"street_1":"***","stre'
        b'et_2":"***","city":"Ottawa","postal_code":"","state":"","country":""},"summary":{"subtotal":40,"ship'
        b'ping_cost":5,"total_tax":0,"total_cost":4538},"adjustments":[{"name":"SAVE4","amount":4},{"name":"Bu'
        b'lk socks","amount":0},{"name":"Free ship","amount":5}],"elements":[{"title":"Classic T-Shirt","subti'
        b'tle":"M","quantity":2,"price":20,"currency":"JPY","image_url":"https://cdn.example/1.png"},{"title":'
        b'"Socks","subtitle":"","quantity":3,"price":0,"currency":"JPY","image_url":""}]}',
        # repr
        b"Receipt(recipient_name='J*** D***', order_number='1001', currency='JPY', payment_method='Visa 4242',"
        b" order_url='https://shop.example/orders/abc', timestamp='1714174200', status='cancelled', address=Re"
        b"ceiptAddress(street_1='***', street_2='***', city='Ottawa', postal_code='', state='', country=''), s"
        b'ummary=ReceiptSummary(subtotal=40, shipping_cost=5, total_tax=0, total_cost=4538), adjustments=[Adju'
        b"stment(name='SAVE4', amount=4), Adjustment(name='Bulk socks', amount=0), Adjustment(name='Free ship'"
        b", amount=5)], elements=[ReceiptElement(title='Classic T-Shirt', subtitle='M', quantity=2, price=20, "
        b"currency='JPY', image_url='https://cdn.example/1.png'), ReceiptElement(title='Socks', subtitle='', q"
        b"uantity=3, price=0, currency='JPY', image_url='')])",
    ),
    'unpaid_kwd_sparse': (
        # joinchat v1
        b'{"success":true,"has_next_page":false,"orders":[{"recipient_name":"","order_number":"1001","currency'
        b'":"KWD","payment_method":"Visa 4242","order_url":"","timestamp":"0","status":"unpaid","address":{"st'
        b'reet_1":"","street_2":"","city":"","postal_code":"","state":"","country":""},"summary":{"subtotal":0'
        b'.0,"shipping_cost":5.0,"total_tax":0.0,"total_cost":1.235},"adjustments":[{"name":"","amount":0.0}],'
        b'"elements":[{"title":"Dates","subtitle":"","quantity":4,"price":2.5,"currency":"KWD","image_url":""}'
        b',{"title":"","subtitle":"","quantity":0,"price":0.0,"currency":"KWD","image_url":""}]}]}',
        # joinchat v2
        b'{"success":true,"total":1,"data":[{"template_type":"receipt","recipient_name":"","order_number":"100'
        b'1","currency":"KWD","payment_method":"Visa 4242","order_url":"","timestamp":"0","address":{"street_1'
        b'":"","street_2":"","city":"","postal_code":"","state":"","country":""},"summary":{"subtotal":0.0,"sh'
        b'ipping_cost":5.0,"total_tax":0.0,"total_cost":1.235},"adjustments":[{"name":"","amount":0.0}],"eleme'
        b'nts":[{"title":"Dates","subtitle":"","quantity":4,"price":2.5,"currency":"KWD","image_url":""},{"tit'
        b'le":"","subtitle":"","quantity":0,"price":0.0,"currency":"KWD","image_url":""}]}]}',
        # meetbot
        b'{"success":true,"object":"orders","has_next_page":false,"orders":[{"recipient_name":"","order_number'
        b'":"1001","currency":"KWD","payment_method":"Visa 4242","order_url":"","timestamp":"0","status":"unpa'
        b'id","address":{"street_1":"","street_2":"","city":"","postal_code":"","state":"","country":""},"summ'
        b'ary":{"subtotal":0.0,"shipping_cost":5.0,"total_tax":0.0,"total_cost":1.235},"adjustments":[{"name":'
        b'"","amount":0.0}],"elements":[{"title":"Dates","subtitle":"","quantity":4,"price":2.5,"currency":"KW'
        b'D","image_url":""},{"title":"","subtitle":"","quantity":0,"price":0.0,"currency":"KWD","image_url":"'
        b'"}]}]}',
        # push params
        b'{"recipient_name":"","order_number":"1001","currency":"KWD","payment_method":"Visa 4242","order_url"'
        b':"","timestamp":0,"address":{"street_1":"","street_2":"","city":"","postal_code":"","state":"","coun'
        b'try":""},"summary":{"subtotal":0.0,"shipping_cost":5.0,"total_tax":0.0,"total_cost":1.235},"adjustme'
        b'nts":[{"name":"","amount":0.0}],"elements":[{"title":"Dates","subtitle":"","quantity":4,"price":2.5,'
        b'"currency":"KWD","image_url":""},{"title":"","subtitle":"","quantity":0,"price":0.0,"currency":"KWD"'
        b',"image_url":""}]}',
        # repr
        b"Receipt(recipient_name='', order_number='1001', currency='KWD', payment_method='Visa 4242', order_ur"
        b"l='', timestamp='0', status='unpaid', address=ReceiptAddress(street_1='', street_2='', city='', post"
        b"al_code='', state='', country=''), summary=ReceiptSummary(subtotal=0.0, shipping_cost=5.0, total_tax"
        b"=0.0, total_cost=1.235), adjustments=[Adjustment(name='', amount=0.0)], elements=[ReceiptElement(tit"
        b"le='Dates', subtitle='', quantity=4, price=2.5, currency='KWD', image_url=''), ReceiptElement(title="
        b"'', subtitle='', quantity=0, price=0.0, currency='KWD', image_url='')])",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_receipt_bytes(name: str) -> None:
    assert tuple(out for _, out in rendered(name)) == EXPECTED[name]


def _same_dump(fast: Any, dumped: Any) -> bool:
    """Equal, with the same key order at every level and the same types (1 and 1.0 are equal in Python)."""
    if isinstance(dumped, dict):
        return (
            isinstance(fast, dict)
            and list(fast) == list(dumped)
            and all(_same_dump(fast[k], v) for k, v in dumped.items())
        )
    if isinstance(dumped, list):
        return isinstance(fast, list) and len(fast) == len(dumped) and all(map(_same_dump, fast, dumped))
    return type(fast) is type(dumped) and fast == dumped


@pytest.mark.parametrize("name", sorted(CASES))
def test_receipt_fields_are_model_dump(name: str) -> None:
    node, mask = CASES[name]
    receipt = order_to_receipt(node, mask_personal=mask)
    copied = receipt.model_copy(update={"address": None, "status": "closed"})
    for r in (receipt, copied):
        assert _same_dump(receipt_fields(r), r.model_dump(exclude_none=True))
        assert _same_dump(receipt_fields(r, copy_nested=False), r.model_dump(exclude_none=True))
        fields = receipt_fields(r)
        fields["summary"]["total_cost"] = -1  # a copy: the model is untouched
        assert r.summary.total_cost != -1


def test_package_dict_is_model_dump() -> None:
    package = Package(
        order_number="1001",
        package_number="1001.1",
        product_name="Socks",
        carrier="UPS",
        tracking_number="1Z999",
        tracking_url="https://ups.example/1Z999",
        package_status="In transit",
        exp_delivery="2024-05-02",
    )
    assert _same_dump(package_dict(package), package.model_dump())
    assert _same_dump(package_dict(package.model_copy(update={"carrier": "DHL"})), {**package.model_dump(), "carrier": "DHL"})
