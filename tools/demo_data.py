"""Demo customers of a mobile operator in Uzbekistan, Ukraine, Vietnam and Russia, loaded through
the gateway's public API with the local credentials of `make run`.

    python -m tools.demo_data [--target 127.0.0.1:50050] [--partner-target 127.0.0.1:50060]
                              [--credentials .data/credentials] [--count 400] [--seed 7]

Each customer is a person (names in Uzbek Latin with ʻ, Ukrainian and Russian Cyrillic, Vietnamese
with diacritics) or an organization, with a local mobile number, a postal address in a real region,
1 to 3 lines, consent decisions, and a lifecycle that sometimes ends in suspension or churn. The data
depends only on the seed, and every mutating call carries a request_id derived from it, so loading
the same seed twice changes nothing.

The back office loads them as its batch identities `demo-loader`, `demo-loader-2` and
`demo-loader-3` (employee tokens with the role back-office), each a third of the customers: the
gateway limits each employee's rate, and each identity's calls are paced just below it. Customers
the demo retail chain (texnomart) signed up are onboarded by that chain itself, with its client
certificate at the partner address: the customer and their lines; the back office records the rest
of their story.
"""

import argparse
import asyncio
import contextlib
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import grpc
import phonenumbers
from faker import Faker
from faker.decode import unidecode
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from services.customer.customers.text import fold
from tools.credentials import DEMO_RETAILER
from tools.local_gateway import (
    DEFAULT_ADDRESS,
    DEFAULT_PARTNER_ADDRESS,
    LocalGateway,
    MissingCredentials,
    credentials_dir,
    existing_credentials,
    partner_name,
    shown_path,
)

LOADER = "demo-loader"
"""The back office's batch identity that loads the demo (the subject of its employee token)."""
LOADER_ROLES = ("back-office",)
LOADERS = 3
"""Batch identities the customers are spread over, `demo-loader` the first: each has its own rate at the
gateway, so that three load in a third of the time a single one takes."""
DEMO_PARTNER = partner_name(DEMO_RETAILER)
"""The demo retail chain as customers' `retailer_id` names it."""
CALL_TIMEOUT_SECONDS = 30.0
"""Each call's deadline: room for a busy machine, where a statement that ran out of time is sent again."""
CONCURRENT_CUSTOMERS = 4
"""Customers each loader identity loads at once: enough to keep its paced rate busy."""
# Dates count back from a fixed day rather than today, so that a load on a later day sends the very
# same requests and is answered from the idempotency records instead of being refused.
LATEST_ACTIVATION = date(2025, 12, 31)
LEGACY_PLAN_CLOSED = date(2014, 1, 1)
"""Since when the old plans take no new lines; the personal lines activated before stayed on them."""
# Reference data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A city and the first postal code of its range."""

    name: str
    postal_code: int


@dataclass(frozen=True)
class Region:
    """A first-level administrative area, named as locals write it."""

    name: str
    cities: tuple[City, ...]


@dataclass(frozen=True)
class GovernmentBody:
    """A public body that is a business customer, with where it sits."""

    name: str
    region: str
    city: str


@dataclass(frozen=True)
class Country:
    """What a customer's country decides: language, places, numbers, plans, shops."""

    code: str
    faker_locale: str
    language: str
    share: float
    regions: tuple[Region, ...]
    postal_code_digits: int
    mobile_prefixes: tuple[str, ...]
    personal_plans: tuple[str, ...]
    business_plans: tuple[str, ...]
    legacy_plan: str
    """The plan personal lines activated before LEGACY_PLAN_CLOSED are still on: dear for what it gives."""
    retailers: tuple[str, ...]
    competitors: tuple[str, ...]
    moved_abroad: str
    email_domains: tuple[str, ...]
    government_bodies: tuple[GovernmentBody, ...]


def _regions(table: dict[str, tuple[tuple[str, int], ...]]) -> tuple[Region, ...]:
    return tuple(Region(name, tuple(City(city, code) for city, code in cities)) for name, cities in table.items())


UZBEKISTAN = Country(
    code="UZ",
    faker_locale="uz_UZ",
    language="uz-Latn",
    share=0.35,
    regions=_regions(
        {
            "Toshkent shahri": (("Toshkent", 100000),),
            "Toshkent viloyati": (("Chirchiq", 111700), ("Angren", 110100), ("Olmaliq", 110100)),
            "Samarqand viloyati": (("Samarqand", 140100), ("Kattaqoʻrgʻon", 140300), ("Urgut", 141600)),
            "Fargʻona viloyati": (("Fargʻona", 150100), ("Qoʻqon", 150700), ("Margʻilon", 151100)),
            "Buxoro viloyati": (("Buxoro", 200100), ("Gʻijduvon", 200300), ("Kogon", 200400)),
            "Andijon viloyati": (("Andijon", 170100), ("Asaka", 170200)),
            "Namangan viloyati": (("Namangan", 160100), ("Chust", 160700)),
            "Qashqadaryo viloyati": (("Qarshi", 180100), ("Shahrisabz", 181300)),
            "Xorazm viloyati": (("Urganch", 220100), ("Xiva", 220900)),
            "Qoraqalpogʻiston Respublikasi": (("Nukus", 230100), ("Qoʻngʻirot", 231000)),
        }
    ),
    postal_code_digits=6,
    mobile_prefixes=(
        *("90", "91"),  # Beeline
        *("93", "94"),  # Ucell
        *("95", "99", "77"),  # Uzmobile
        *("97", "88"),  # Mobiuz
        "33",  # Humans
    ),
    personal_plans=("plans/uz-start-5gb", "plans/uz-comfort-20gb", "plans/uz-unlim-max"),
    business_plans=("plans/uz-biznes-50gb",),
    legacy_plan="plans/uz-klassik-2012",
    retailers=("retailers/uzmobile-shop-1", DEMO_PARTNER, "retailers/mediapark"),
    competitors=("Beeline Uzbekistan", "Ucell", "Mobiuz"),
    moved_abroad="Chet elga koʻchib ketdi",
    email_domains=("mail.uz", "gmail.com", "mail.ru"),
    government_bodies=(
        GovernmentBody("Toshkent shahar hokimligi", "Toshkent shahri", "Toshkent"),
        GovernmentBody("Samarqand viloyati hokimligi", "Samarqand viloyati", "Samarqand"),
        GovernmentBody("Fargʻona viloyati xalq taʼlimi boshqarmasi", "Fargʻona viloyati", "Fargʻona"),
        GovernmentBody("Nukus shahar hokimligi", "Qoraqalpogʻiston Respublikasi", "Nukus"),
    ),
)

UKRAINE = Country(
    code="UA",
    faker_locale="uk_UA",
    language="uk",
    share=0.25,
    regions=_regions(
        {
            "місто Київ": (("Київ", 1001),),
            "Київська область": (("Біла Церква", 9100), ("Бровари", 7400), ("Бориспіль", 8300)),
            "Львівська область": (("Львів", 79000), ("Дрогобич", 82100), ("Стрий", 82400)),
            "Харківська область": (("Харків", 61000), ("Лозова", 64600)),
            "Одеська область": (("Одеса", 65000), ("Ізмаїл", 68600), ("Чорноморськ", 68000)),
            "Дніпропетровська область": (("Дніпро", 49000), ("Кривий Ріг", 50000), ("Павлоград", 51400)),
            "Вінницька область": (("Вінниця", 21000), ("Жмеринка", 23100)),
        }
    ),
    postal_code_digits=5,
    mobile_prefixes=(
        *("67", "68", "96", "97", "98"),  # Kyivstar
        *("50", "66", "95", "99"),  # Vodafone
        *("63", "73", "93"),  # lifecell
    ),
    personal_plans=("plans/ua-smart-10gb", "plans/ua-super-unlim", "plans/ua-senior-basic"),
    business_plans=("plans/ua-business-pro",),
    legacy_plan="plans/ua-classic-2012",
    retailers=("retailers/comfy", "retailers/foxtrot", "retailers/allo"),
    competitors=("Kyivstar", "lifecell", "Vodafone Україна"),
    moved_abroad="Виїхав за кордон",
    email_domains=("ukr.net", "gmail.com", "i.ua"),
    government_bodies=(
        GovernmentBody("Київська міська державна адміністрація", "місто Київ", "Київ"),
        GovernmentBody("Львівська міська рада", "Львівська область", "Львів"),
        GovernmentBody("Одеська міська рада", "Одеська область", "Одеса"),
        GovernmentBody("Вінницька обласна державна адміністрація", "Вінницька область", "Вінниця"),
    ),
)

VIETNAM = Country(
    code="VN",
    faker_locale="vi_VN",
    language="vi",
    share=0.20,
    regions=_regions(
        {
            "Hà Nội": (("Hà Nội", 10000),),
            "Thành phố Hồ Chí Minh": (("Thành phố Hồ Chí Minh", 70000),),
            "Đà Nẵng": (("Đà Nẵng", 50000),),
            "Hải Phòng": (("Hải Phòng", 4000),),
            "Cần Thơ": (("Cần Thơ", 94000),),
            "Khánh Hòa": (("Nha Trang", 57000), ("Cam Ranh", 57500)),
            "Quảng Ninh": (("Hạ Long", 1000), ("Móng Cái", 1100)),
            "Nghệ An": (("Vinh", 43000),),
        }
    ),
    postal_code_digits=5,
    mobile_prefixes=(
        *("86", "96", "97", "98", "32", "33", "34", "35", "36", "37", "38", "39"),  # Viettel
        *("90", "93", "70", "76", "77", "78", "79"),  # MobiFone
        *("88", "91", "94", "81", "82", "83", "84", "85"),  # VinaPhone
    ),
    personal_plans=("plans/vn-st90-daily", "plans/vn-5g-150", "plans/vn-student-70"),
    business_plans=("plans/vn-business-300",),
    legacy_plan="plans/vn-tomato-2012",
    retailers=("retailers/thegioididong", "retailers/fpt-shop", "retailers/cellphones"),
    competitors=("Viettel", "VinaPhone", "MobiFone"),
    moved_abroad="Chuyển ra nước ngoài",
    email_domains=("gmail.com", "yahoo.com.vn", "outlook.com"),
    government_bodies=(
        GovernmentBody("Ủy ban nhân dân thành phố Hà Nội", "Hà Nội", "Hà Nội"),
        GovernmentBody("Ủy ban nhân dân thành phố Đà Nẵng", "Đà Nẵng", "Đà Nẵng"),
        GovernmentBody(
            "Sở Giáo dục và Đào tạo Thành phố Hồ Chí Minh", "Thành phố Hồ Chí Minh", "Thành phố Hồ Chí Minh"
        ),
        GovernmentBody("Ủy ban nhân dân tỉnh Khánh Hòa", "Khánh Hòa", "Nha Trang"),
    ),
)

RUSSIA = Country(
    code="RU",
    faker_locale="ru_RU",
    language="ru",
    share=0.20,
    regions=_regions(
        {
            "Москва": (("Москва", 101000),),
            "Санкт-Петербург": (("Санкт-Петербург", 190000),),
            "Московская область": (("Подольск", 142100), ("Химки", 141400), ("Балашиха", 143900)),
            "Новосибирская область": (("Новосибирск", 630000), ("Бердск", 633000)),
            "Свердловская область": (("Екатеринбург", 620000), ("Нижний Тагил", 622000)),
            "Республика Татарстан": (("Казань", 420000), ("Набережные Челны", 423800)),
            "Краснодарский край": (("Краснодар", 350000), ("Сочи", 354000), ("Новороссийск", 353900)),
        }
    ),
    postal_code_digits=6,
    mobile_prefixes=(
        *("910", "912", "915", "916", "919", "980", "985"),  # MTS
        *("920", "921", "925", "926", "929"),  # MegaFon
        *("903", "905", "906", "960", "961", "962"),  # Beeline
        *("900", "901", "950", "951", "977", "999"),  # T2
    ),
    personal_plans=("plans/ru-basic-15gb", "plans/ru-family-40gb", "plans/ru-unlim-pro"),
    business_plans=("plans/ru-business-100gb",),
    legacy_plan="plans/ru-classic-2012",
    retailers=("retailers/svyaznoy", "retailers/mvideo", "retailers/dns"),
    competitors=("МТС", "МегаФон", "Билайн", "T2"),
    moved_abroad="Переезд за границу",
    email_domains=("mail.ru", "yandex.ru", "gmail.com"),
    government_bodies=(
        GovernmentBody("Администрация города Казани", "Республика Татарстан", "Казань"),
        GovernmentBody("Комитет по образованию Санкт-Петербурга", "Санкт-Петербург", "Санкт-Петербург"),
        GovernmentBody("Администрация города Екатеринбурга", "Свердловская область", "Екатеринбург"),
        GovernmentBody("Министерство здравоохранения Новосибирской области", "Новосибирская область", "Новосибирск"),
    ),
)

COUNTRIES = (UZBEKISTAN, UKRAINE, VIETNAM, RUSSIA)

# Faker's uz_UZ names are today's baby names, mostly without ʻ; older Uzbeks carry these.
_UZ_MALE_NAMES = ("Gʻulom", "Oʻktam", "Gʻayrat", "Oʻlmas", "Toʻlqin", "Oʻtkir", "Ulugʻbek", "Rustam", "Shuhrat")
_UZ_FEMALE_NAMES = ("Oʻgʻiloy", "Gʻuncha", "Moʻtabar", "Toʻxtaxon", "Gulnoza", "Dilnoza", "Nodira", "Oʻlmasoy")
_UZ_FAMILY_NAMES = ("Gʻulomov", "Toʻxtayev", "Oʻrinboyev", "Yoʻldoshev", "Qoʻchqorov", "Boʻriyev", "Gʻaniyev")
_UZ_STREETS = (
    "Amir Temur shoh koʻchasi",
    "Mustaqillik koʻchasi",
    "Alisher Navoiy koʻchasi",
    "Mirzo Ulugʻbek koʻchasi",
    "Bobur koʻchasi",
    "Gʻafur Gʻulom koʻchasi",
    "Bunyodkor shoh koʻchasi",
)
_VN_MIDDLE_NAMES = {True: ("Thị", "Ngọc", "Thu", "Thanh", "Minh"), False: ("Văn", "Đức", "Quang", "Hữu", "Minh")}

_COMPANY_WORDS = {
    "UZ": ("Oltin Vodiy", "Turon", "Navroʻz", "Zarafshon", "Ipak Yoʻli", "Sharq Savdo", "Buyuk Qurilish"),
    "UA": ("Карпати", "Зоря", "Дніпро-Агро", "Світанок", "Техносвіт", "Полісся", "Будінвест"),
    "VN": ("Minh Phát", "Thành Công", "Hòa Bình", "An Khang", "Phúc Lộc", "Sao Mai", "Hưng Thịnh"),
    "RU": ("Вектор", "Альянс", "Сибирь-Транс", "Волга-Агро", "ТехноСтрой", "Меридиан", "Гранит"),
}
_LEGAL_FORMS = {
    "UZ": {"sme": '"{}" MChJ', "enterprise": '"{}" AJ', "household": "{} oilasi"},
    "UA": {"sme": "ТОВ «{}»", "enterprise": "ПрАТ «{}»", "household": "Родина {}"},
    "VN": {"sme": "Công ty TNHH {}", "enterprise": "Công ty Cổ phần {}", "household": "Hộ gia đình {}"},
    "RU": {"sme": "ООО «{}»", "enterprise": "АО «{}»", "household": "Семья {}"},
}
# Length and leading digits of a company's tax number: STIR, EDRPOU, MST (INN comes from Faker).
_TAX_ID_SHAPES = {"UZ": (9, ("2", "3")), "UA": (8, ("3", "4")), "VN": (10, ("01", "03", "04"))}


# The plan: what to create, decided before any call ---------------------------------------------------


@dataclass(frozen=True)
class ConsentStep:
    """One consent decision to record."""

    purpose: customer_pb2.ConsentPurpose
    decision: customer_pb2.ConsentDecision
    channel: common_pb2.Channel


@dataclass(frozen=True)
class StatusStep:
    """One move through the customer lifecycle."""

    status: customer_pb2.CustomerStatus
    churn_reason: customer_pb2.ChurnReason = customer_pb2.CHURN_REASON_UNSPECIFIED
    churn_detail: str = ""


@dataclass
class DemoCustomer:
    """One customer to load and what happens to it afterwards."""

    index: int
    country: Country
    customer: customer_pb2.Customer
    lines: list[customer_pb2.Subscription] = field(default_factory=list)
    consents: list[ConsentStep] = field(default_factory=list)
    status_changes: list[StatusStep] = field(default_factory=list)
    final_line_status: customer_pb2.SubscriptionStatus = customer_pb2.SUBSCRIPTION_STATUS_ACTIVE


def plan_demo_customers(count: int = 400, seed: int = 7) -> list[DemoCustomer]:
    """The customers `load_demo_data` creates, the same for the same count and seed."""
    planner = _Planner(seed)
    return [planner.customer(index) for index in range(count)]


class _Planner:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {country.code: Faker(country.faker_locale) for country in COUNTRIES}
        for offset, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed * 1000 + offset)
        self.numbers_in_use: set[str] = set()

    def customer(self, index: int) -> DemoCustomer:
        rng = self.rng
        country = rng.choices(COUNTRIES, weights=[c.share for c in COUNTRIES])[0]
        faker = self.fakers[country.code]
        customer = customer_pb2.Customer()
        is_organization = rng.random() < 0.10
        region, city = self._place(country)
        if is_organization:
            region, city, email = self._organization(customer, country, faker, region, city)
        else:
            email = self._individual(customer, country, faker)
        customer.acquisition_channel = rng.choices(
            (
                common_pb2.CHANNEL_RETAIL_SHOP,
                common_pb2.CHANNEL_WEB,
                common_pb2.CHANNEL_APP,
                common_pb2.CHANNEL_CALL_CENTRE,
            ),
            weights=(40, 25, 20, 15),
        )[0]
        if customer.acquisition_channel == common_pb2.CHANNEL_RETAIL_SHOP:
            customer.retailer_id = rng.choice(country.retailers)
        plan = DemoCustomer(index=index, country=country, customer=customer)
        is_prospect = rng.random() < 0.08
        customer.status = customer_pb2.CUSTOMER_STATUS_PROSPECT if is_prospect else customer_pb2.CUSTOMER_STATUS_ACTIVE
        if not is_prospect:
            plan.lines = self._lines(customer, country, region)
        phone = _e164(plan.lines[0].msisdn) if plan.lines else self._mobile_number(country)
        customer.contact_media.append(
            customer_pb2.ContactMedium(phone_number=self._written(phone, country), preferred=True)
        )
        if rng.random() < (0.9 if is_organization else 0.5):
            customer.contact_media.append(customer_pb2.ContactMedium(email_address=email))
        customer.contact_media.append(customer_pb2.ContactMedium(postal_address=self._address(country, region, city)))
        plan.consents = self._consents(customer.acquisition_channel, is_prospect)
        if not is_prospect:
            plan.status_changes, plan.final_line_status = self._lifecycle(country)
        return plan

    # Parties -------------------------------------------------------------------------------------

    def _individual(self, customer: customer_pb2.Customer, country: Country, faker: Faker) -> str:
        """Makes the customer a person; returns an email address they might have."""
        rng = self.rng
        female = rng.random() < 0.5
        given, middle, family = _NAMERS[country.code](faker, rng, female)
        person = customer.individual
        person.given_name, person.middle_name, person.family_name = given, middle, family
        born = date(1940, 1, 1) + timedelta(days=rng.randrange((date(2007, 12, 31) - date(1940, 1, 1)).days))
        person.birth_date.CopyFrom(_proto_date(born))
        if rng.random() < 0.97:
            person.gender = customer_pb2.GENDER_FEMALE if female else customer_pb2.GENDER_MALE
        person.preferred_language = country.language
        return self._mailbox(f"{_ascii_slug(given)}.{_ascii_slug(family)}", country)

    def _organization(
        self, customer: customer_pb2.Customer, country: Country, faker: Faker, region: Region, city: City
    ) -> tuple[Region, City, str]:
        """Makes the customer an organization; returns where it sits and its email address."""
        rng = self.rng
        organization = customer.organization
        domain = country.code.lower()
        kind = rng.choices(("sme", "enterprise", "government", "household"), weights=(50, 20, 10, 20))[0]
        forms = _LEGAL_FORMS[country.code]
        if kind == "government":
            body = rng.choice(country.government_bodies)
            organization.legal_name = body.name
            region = next(r for r in country.regions if r.name == body.region)
            city = next(c for c in region.cities if c.name == body.city)
            email = f"info@{_ascii_slug(city.name, '-')}.gov.{domain}"
        elif kind == "household":
            _, _, family = _NAMERS[country.code](faker, rng, False)
            organization.legal_name = forms["household"].format(_household_name(country.code, family))
            email = self._mailbox(_ascii_slug(family), country)
        else:
            brand = rng.choice(_COMPANY_WORDS[country.code])
            organization.legal_name = forms[kind].format(brand)
            if rng.random() < 0.5:
                organization.trading_name = brand
            email = f"info@{_ascii_slug(brand, '-')}.{domain}"
        if kind != "household":
            organization.tax_id = _tax_id(country.code, faker, rng)
        organization.kind = {
            "sme": customer_pb2.ORGANIZATION_KIND_SME,
            "enterprise": customer_pb2.ORGANIZATION_KIND_ENTERPRISE,
            "government": customer_pb2.ORGANIZATION_KIND_GOVERNMENT,
            "household": customer_pb2.ORGANIZATION_KIND_HOUSEHOLD,
        }[kind]
        return region, city, email

    # Places and contacts -------------------------------------------------------------------------

    def _place(self, country: Country) -> tuple[Region, City]:
        region = self.rng.choice(country.regions)
        return region, self.rng.choice(region.cities)

    def _address(self, country: Country, region: Region, city: City) -> common_pb2.PostalAddress:
        rng = self.rng
        if country.code == "UZ":
            street = f"{rng.choice(_UZ_STREETS)}, {rng.randint(1, 120)}-uy"
        else:
            street = self.fakers[country.code].street_address()
        postal_code = str(city.postal_code + rng.randrange(0, 40)).zfill(country.postal_code_digits)
        return common_pb2.PostalAddress(
            country_code=country.code,
            region=region.name,
            city=city.name,
            address_lines=[street],
            postal_code=postal_code,
        )

    def _mobile_number(self, country: Country) -> str:
        """A valid mobile number of `country` in E.164 that no other demo customer has."""
        example = phonenumbers.example_number_for_type(country.code, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            raise RuntimeError(f"phonenumbers has no example mobile number for {country.code}")
        length = len(str(example.national_number))
        for _ in range(1000):
            prefix = self.rng.choice(country.mobile_prefixes)
            national = prefix + _digits(self.rng, length - len(prefix))
            number = phonenumbers.parse(f"+{example.country_code}{national}")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            mobile = phonenumbers.number_type(number) in _MOBILE_TYPES
            if phonenumbers.is_valid_number(number) and mobile and e164 not in self.numbers_in_use:
                self.numbers_in_use.add(e164)
                return e164
        raise RuntimeError(f"no free mobile number for {country.code}")

    def _written(self, e164: str, country: Country) -> str:
        """The number as a customer would write it at home; read back in the customer's country."""
        forms = written_forms(e164)
        return self.rng.choice([form for form in forms if _reads_back(form, country.code, e164)] or [e164])

    def _mailbox(self, name: str, country: Country) -> str:
        number = str(self.rng.randint(1, 99)) if self.rng.random() < 0.5 else ""
        return f"{name}{number}@{self.rng.choice(country.email_domains)}"

    # Lines, consents, lifecycle ----------------------------------------------------------------------

    def _lines(
        self, customer: customer_pb2.Customer, country: Country, region: Region
    ) -> list[customer_pb2.Subscription]:
        rng = self.rng
        is_business = customer.HasField("organization") and (
            customer.organization.kind != customer_pb2.ORGANIZATION_KIND_HOUSEHOLD
        )
        count = rng.choices((1, 2, 3), weights=(20, 40, 40) if customer.HasField("organization") else (60, 30, 10))[0]
        earliest = LATEST_ACTIVATION - timedelta(days=15 * 365)
        if customer.HasField("individual"):
            birth = customer.individual.birth_date
            earliest = max(earliest, date(birth.year + 16, birth.month, min(birth.day, 28)))
        activations = sorted(
            earliest + timedelta(days=rng.randrange((LATEST_ACTIVATION - earliest).days + 1)) for _ in range(count)
        )
        lines = []
        for activated in activations:
            business = is_business or rng.random() < 0.1
            home = region if rng.random() < 0.85 else rng.choice(country.regions)
            plan = rng.choice(country.business_plans if business else country.personal_plans)
            lines.append(
                customer_pb2.Subscription(
                    # Lines are read in the service's own country, so they carry the country code.
                    msisdn=self.rng.choice(written_forms(self._mobile_number(country))[:2]),
                    tariff_plan_id=country.legacy_plan if activated < LEGACY_PLAN_CLOSED and not business else plan,
                    activation_date=_proto_date(activated),
                    purpose=(
                        customer_pb2.SUBSCRIPTION_PURPOSE_BUSINESS
                        if business
                        else customer_pb2.SUBSCRIPTION_PURPOSE_PERSONAL
                    ),
                    home_region=home.name,
                )
            )
        return lines

    def _consents(self, first_channel: common_pb2.Channel, is_prospect: bool) -> list[ConsentStep]:
        rng = self.rng
        purposes = (
            (customer_pb2.CONSENT_PURPOSE_MARKETING, 0.6),
            (customer_pb2.CONSENT_PURPOSE_PROFILING, 0.5),
            (customer_pb2.CONSENT_PURPOSE_PARTNER_SHARING, 0.35),
        )
        steps = []
        for purpose, grant_rate in purposes[:1] if is_prospect else purposes:
            if rng.random() > 0.75:
                continue
            granted = rng.random() < grant_rate
            decision = customer_pb2.CONSENT_DECISION_GRANTED if granted else customer_pb2.CONSENT_DECISION_DENIED
            steps.append(ConsentStep(purpose, decision, first_channel))
            if granted and rng.random() < 0.15:
                later = rng.choice((common_pb2.CHANNEL_APP, common_pb2.CHANNEL_WEB, common_pb2.CHANNEL_CALL_CENTRE))
                steps.append(ConsentStep(purpose, customer_pb2.CONSENT_DECISION_REVOKED, later))
        return steps

    def _lifecycle(self, country: Country) -> tuple[list[StatusStep], customer_pb2.SubscriptionStatus]:
        rng = self.rng
        fate = rng.random()
        if fate < 0.06:
            return [StatusStep(customer_pb2.CUSTOMER_STATUS_SUSPENDED)], customer_pb2.SUBSCRIPTION_STATUS_SUSPENDED
        if fate >= 0.14:
            return [], customer_pb2.SUBSCRIPTION_STATUS_ACTIVE
        reason = rng.choices(
            (
                customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR,
                customer_pb2.CHURN_REASON_VOLUNTARY,
                customer_pb2.CHURN_REASON_NON_PAYMENT,
                customer_pb2.CHURN_REASON_DECEASED,
                customer_pb2.CHURN_REASON_OTHER,
            ),
            weights=(50, 20, 20, 3, 7),
        )[0]
        detail = {
            customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR: rng.choice(country.competitors),
            customer_pb2.CHURN_REASON_OTHER: country.moved_abroad,
        }.get(reason, "")
        steps = [StatusStep(customer_pb2.CUSTOMER_STATUS_CHURNED, reason, detail)]
        if reason == customer_pb2.CHURN_REASON_NON_PAYMENT:
            # Operators bar a debtor's lines before ending the contract.
            steps.insert(0, StatusStep(customer_pb2.CUSTOMER_STATUS_SUSPENDED))
        return steps, customer_pb2.SUBSCRIPTION_STATUS_TERMINATED


_MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
Namer = Callable[[Faker, random.Random, bool], tuple[str, str, str]]


def _uzbek_name(faker: Faker, rng: random.Random, female: bool) -> tuple[str, str, str]:
    if rng.random() < 0.35:
        given = rng.choice(_UZ_FEMALE_NAMES if female else _UZ_MALE_NAMES)
        family = rng.choice(_UZ_FAMILY_NAMES) + ("a" if female else "")
    else:
        given = faker.first_name_female() if female else faker.first_name_male()
        family = faker.last_name_female() if female else faker.last_name_male()
    father = rng.choice([name for name in (*_UZ_MALE_NAMES, faker.first_name_male()) if name != given])
    middle = f"{father} {'qizi' if female else 'oʻgʻli'}" if rng.random() < 0.6 else ""
    return _uzbek_apostrophes(given), _uzbek_apostrophes(middle), _uzbek_apostrophes(family)


def _slavic_name(faker: Faker, rng: random.Random, female: bool) -> tuple[str, str, str]:
    if female:
        return faker.first_name_female(), faker.middle_name_female(), faker.last_name_female()
    return faker.first_name_male(), faker.middle_name_male(), faker.last_name_male()


def _vietnamese_name(faker: Faker, rng: random.Random, female: bool) -> tuple[str, str, str]:
    given = faker.first_name_female() if female else faker.first_name_male()
    middle = rng.choice([name for name in _VN_MIDDLE_NAMES[female] if name != given])
    return given, middle, faker.last_name()


_NAMERS: dict[str, Namer] = {"UZ": _uzbek_name, "UA": _slavic_name, "VN": _vietnamese_name, "RU": _slavic_name}


def _uzbek_apostrophes(text: str) -> str:
    """Uzbek Latin writes oʻ/gʻ with ʻ (U+02BB) and the glottal stop with ʼ (U+02BC); Faker uses quotes."""
    return text.replace("‘", "ʻ").replace("`", "ʻ").replace("’", "ʼ").replace("'", "ʼ")


def _household_name(country_code: str, family: str) -> str:
    if country_code == "UZ":
        return family + "lar"
    if country_code == "RU" and family.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return family + "ых"
    return family


def written_forms(e164: str) -> list[str]:
    """Ways people write a mobile number: "+998 90 123-45-67", "+380501234567", "0501234567"…"""
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    digits = str(number.national_number)
    forms = [
        e164,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        national,
        re.sub(r"\D", "", national),
    ]
    region = phonenumbers.region_code_for_number(number)
    if region == "UZ":
        forms.append(f"+998 {digits[:2]} {digits[2:5]}-{digits[5:7]}-{digits[7:]}")
    elif region == "UA":
        forms.append(f"+38 (0{digits[:2]}) {digits[2:5]}-{digits[5:7]}-{digits[7:]}")
    elif region == "VN":
        forms.append(f"0{digits[:3]}.{digits[3:6]}.{digits[6:]}")
    elif region == "RU":
        forms.append(f"+7 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}")
    return forms


def _e164(written: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(written), phonenumbers.PhoneNumberFormat.E164)


def _reads_back(written: str, region: str, e164: str) -> bool:
    try:
        number = phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164


def _tax_id(country_code: str, faker: Faker, rng: random.Random) -> str:
    if country_code == "RU":
        return str(faker.businesses_inn())
    length, leading = _TAX_ID_SHAPES[country_code]
    return _digits(rng, length, first=rng.choice(leading))


def _digits(rng: random.Random, count: int, *, first: str = "") -> str:
    return first + "".join(rng.choice("0123456789") for _ in range(count - len(first)))


def _proto_date(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def _ascii_slug(text: str, separator: str = ".") -> str:
    """Latin letters and digits for an email address: "Данько" -> "danko", "Gʻulomov" -> "gulomov"."""
    transliterated = re.sub(r"['`]", "", unidecode(fold(text)).lower())
    return re.sub(r"[^a-z0-9]+", separator, transliterated).strip(separator) or "client"


# Loading ---------------------------------------------------------------------------------------------


class DemoLoadError(RuntimeError):
    """A call of the load failed; the message names the customer and the step."""


@dataclass(frozen=True)
class DemoSamples:
    """Values taken from loaded customers that make working example calls."""

    phone_number: str
    """A customer's number as written at home, e.g. "+998 90 123-45-67"."""
    customer_name: str
    """Resource name of the customer with that number."""
    name_query: str
    """Diacritics-free part of a customer's name, e.g. "nguyen"."""
    name_match: str
    """The name as stored, e.g. "Nguyễn"."""
    region: str
    """A region where customers live, e.g. "Samarqand viloyati"."""


@dataclass(frozen=True)
class DemoSummary:
    """What a load created (or found already created, when repeated)."""

    customers: int
    """Customers created."""
    subscriptions: int
    """Lines created."""
    consent_records: int
    """Consent decisions recorded."""
    customers_by_status: dict[str, int]
    """Customers per final status, e.g. {"CUSTOMER_STATUS_ACTIVE": 303, ...}."""
    customers_by_country: dict[str, int]
    """Customers per ISO country code."""
    samples: DemoSamples | None
    """Values for example calls; None when no loaded customer fits."""
    loaded: tuple["LoadedCustomer", ...] = ()
    """Every customer created, for the demo loaders of the other services."""


@dataclass(frozen=True)
class LoadedCustomer:
    """A demo customer as loaded."""

    customer: customer_pb2.Customer
    """Its final state, numbers whole."""
    lines: tuple[customer_pb2.Subscription, ...]
    """Its lines as created (their tariff plans and home regions; a line's status may have moved since)."""


async def load_demo_data(gateway: LocalGateway, count: int = 400, seed: int = 7) -> DemoSummary:
    """Creates `count` demo customers through `gateway`; safe to repeat with the same seed. Raises
    DemoLoadError naming the customer and the call that failed."""
    plans = plan_demo_customers(count, seed)
    limits = [asyncio.Semaphore(CONCURRENT_CUSTOMERS) for _ in range(LOADERS)]
    back_offices = [back_office_channel(gateway, shard) for shard in range(LOADERS)]
    async with contextlib.AsyncExitStack() as channels:
        partner = customer_service_pb2_grpc.CustomerServiceStub(
            await channels.enter_async_context(partner_channel(gateway))
        )
        shards = [
            _Stubs(customer_service_pb2_grpc.CustomerServiceStub(await channels.enter_async_context(channel)), partner)
            for channel in back_offices
        ]

        async def load(plan: DemoCustomer) -> LoadedCustomer:
            # By index, so that a repeated load sends each request as the same caller (request ids are per caller).
            shard = plan.index % LOADERS
            async with limits[shard]:
                return await _load_customer(shards[shard], plan, seed)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(load(plan)) for plan in plans]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
    loaded = tuple(task.result() for task in tasks)
    customers = [entry.customer for entry in loaded]
    return DemoSummary(
        customers=len(customers),
        subscriptions=sum(len(plan.lines) for plan in plans),
        consent_records=sum(len(plan.consents) for plan in plans),
        customers_by_status=dict(Counter(customer_pb2.CustomerStatus.Name(c.status) for c in customers)),
        customers_by_country=dict(Counter(plan.country.code for plan in plans)),
        samples=pick_samples(customers),
        loaded=loaded,
    )


async def holds_customers(gateway: LocalGateway) -> bool:
    """Whether the customer service behind `gateway` holds any customer."""
    async with back_office_channel(gateway) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        page = await stub.ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=1), timeout=CALL_TIMEOUT_SECONDS
        )
    return len(page.customers) > 0


async def find_samples(gateway: LocalGateway) -> DemoSamples | None:
    """Samples from the customers already stored (when demo data was loaded by an earlier run)."""
    async with back_office_channel(gateway) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        page = await stub.ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=200), timeout=CALL_TIMEOUT_SECONDS
        )
    return pick_samples(page.customers)


def pick_samples(customers: Sequence[customer_pb2.Customer]) -> DemoSamples | None:
    """An active person with a phone (an Uzbek one when there is) and a name with diacritics
    (a Vietnamese "Nguyễn" when there is); None when no customer fits."""
    people = [c for c in customers if c.HasField("individual") and c.status == customer_pb2.CUSTOMER_STATUS_ACTIVE]
    with_phone = [c for c in people if phone_of(c)]
    if not with_phone:
        return None
    caller = next((c for c in with_phone if phone_of(c).startswith("+998")), with_phone[0])
    family_names = [c.individual.family_name for c in people if len(fold(c.individual.family_name)) >= 3]
    with_diacritics = [name for name in family_names if fold(name) != name.casefold()]
    candidates = with_diacritics or family_names or [caller.individual.family_name]
    name = "Nguyễn" if "Nguyễn" in candidates else candidates[0]
    region = next((m.postal_address.region for m in caller.contact_media if m.HasField("postal_address")), "")
    return DemoSamples(
        # The search reads numbers without a country code in the service's country, so keep the code.
        phone_number=next(form for form in reversed(written_forms(phone_of(caller))) if form.startswith("+")),
        customer_name=caller.name,
        name_query=fold(name),
        name_match=name,
        region=region,
    )


def phone_of(customer: customer_pb2.Customer) -> str:
    """The customer's phone number as stored; "" without one."""
    return next((m.phone_number for m in customer.contact_media if m.HasField("phone_number")), "")


async def list_customers(gateway: LocalGateway, *, max_pages: int = 50) -> list[customer_pb2.Customer]:
    """The customers the system holds (up to `max_pages` pages of 200), as the back office lists them."""
    customers: list[customer_pb2.Customer] = []
    async with back_office_channel(gateway) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        token = ""
        for _ in range(max_pages):
            page = await stub.ListCustomers(
                customer_service_pb2.ListCustomersRequest(page_size=200, page_token=token),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            customers += page.customers
            token = page.next_page_token
            if not token:
                break
    return customers


def loader_subject(shard: int) -> str:
    """The batch identity of one share of the load: `demo-loader`, `demo-loader-2`, ..."""
    return LOADER if shard == 0 else f"{LOADER}-{shard + 1}"


def back_office_channel(gateway: LocalGateway, shard: int = 0) -> grpc.aio.Channel:
    """A channel to the gateway as a demo loader identity, retrying what is safe to retry."""
    return gateway.as_employee(loader_subject(shard), LOADER_ROLES)


def partner_channel(gateway: LocalGateway) -> grpc.aio.Channel:
    """A channel to the gateway's partner address as the demo retail chain, retrying what is safe to retry."""
    return gateway.as_partner(DEMO_RETAILER)


@dataclass(frozen=True)
class _Stubs:
    # Quoted: mypy-protobuf's async stub types exist for type checkers only.
    back_office: "customer_service_pb2_grpc.CustomerServiceAsyncStub"
    partner: "customer_service_pb2_grpc.CustomerServiceAsyncStub"
    """The demo retail chain's counter, at the partner address."""


async def _load_customer(stubs: _Stubs, plan: DemoCustomer, seed: int) -> LoadedCustomer:
    """Creates one customer with its lines, consents and lifecycle; returns its final state and lines.
    The demo retail chain onboards its own customers (the customer and the lines); the back office
    does the rest."""
    prefix = f"demo-{seed}-{plan.index}"
    back_office = stubs.back_office
    onboarding = stubs.partner if plan.customer.retailer_id == DEMO_PARTNER else back_office
    timeout = CALL_TIMEOUT_SECONDS
    step = "CreateCustomer"
    try:
        customer = await onboarding.CreateCustomer(
            customer_service_pb2.CreateCustomerRequest(customer=plan.customer, request_id=f"{prefix}-customer"),
            timeout=timeout,
        )
        lines = []
        for number, line in enumerate(plan.lines):
            step = f"CreateSubscription {line.msisdn}"
            request = customer_service_pb2.CreateSubscriptionRequest(
                parent=customer.name, subscription=line, request_id=f"{prefix}-line-{number}"
            )
            lines.append(await onboarding.CreateSubscription(request, timeout=timeout))
        for number, consent in enumerate(plan.consents):
            step = "RecordConsent"
            await back_office.RecordConsent(
                customer_service_pb2.RecordConsentRequest(
                    parent=customer.name,
                    purpose=consent.purpose,
                    decision=consent.decision,
                    channel=consent.channel,
                    request_id=f"{prefix}-consent-{number}",
                ),
                timeout=timeout,
            )
        for number, change in enumerate(plan.status_changes):
            step = f"ChangeCustomerStatus {customer_pb2.CustomerStatus.Name(change.status)}"
            customer = await back_office.ChangeCustomerStatus(
                customer_service_pb2.ChangeCustomerStatusRequest(
                    name=customer.name,
                    status=change.status,
                    churn_reason=change.churn_reason,
                    churn_detail=change.churn_detail,
                    request_id=f"{prefix}-status-{number}",
                ),
                timeout=timeout,
            )
        for line in lines:
            step = f"UpdateSubscription {line.name}"
            await _move_line_to(back_office, line, plan.final_line_status)
        if onboarding is not back_office and not plan.status_changes:
            step = "GetCustomer"
            # The partner saw the customer as partners do (numbers masked); the samples need them whole.
            customer = await back_office.GetCustomer(
                customer_service_pb2.GetCustomerRequest(name=customer.name), timeout=timeout
            )
    except grpc.aio.AioRpcError as error:
        raise DemoLoadError(
            f"demo customer #{plan.index} ({plan.country.code}), {step}: {error.code().name}: {error.details()}"
        ) from error
    return LoadedCustomer(customer, tuple(lines))


async def _move_line_to(
    stub: "customer_service_pb2_grpc.CustomerServiceAsyncStub",
    line: customer_pb2.Subscription,
    status: customer_pb2.SubscriptionStatus,
) -> None:
    if line.status == status:
        return
    # A repeated load gets the line as first created; a terminated line refuses any change.
    current = await stub.GetSubscription(
        customer_service_pb2.GetSubscriptionRequest(name=line.name), timeout=CALL_TIMEOUT_SECONDS
    )
    if current.status == status:
        return
    await stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(name=line.name, status=status),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )


def gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where the gateway is and which local credentials call it."""
    parser.add_argument("--target", default=DEFAULT_ADDRESS, help="gateway TLS host:port (default %(default)s)")
    parser.add_argument(
        "--partner-target",
        default=DEFAULT_PARTNER_ADDRESS,
        help="gateway partner (mutual TLS) host:port (default %(default)s)",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        default=credentials_dir(),
        help=f"the local credentials of `make run` (default {shown_path(credentials_dir())})",
    )


def gateway_of(arguments: argparse.Namespace) -> LocalGateway:
    """The gateway the options name; MissingCredentials when `make run` has not made credentials yet."""
    return LocalGateway(existing_credentials(arguments.credentials), arguments.target, arguments.partner_target)


def _parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_data", description=__doc__.splitlines()[0])
    gateway_arguments(parser)
    parser.add_argument("--count", type=int, default=400, help="customers to create (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Loads demo data and prints what was created."""
    arguments = _parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        summary = asyncio.run(load_demo_data(gateway_of(arguments), arguments.count, arguments.seed))
    except (DemoLoadError, MissingCredentials) as error:
        print(f"demo data: {error}", file=sys.stderr)
        return 1
    print(
        f"{summary.customers} customers, {summary.subscriptions} lines, {summary.consent_records} consent records; "
        f"by status {summary.customers_by_status}; by country {summary.customers_by_country}"
    )
    if summary.samples is not None:
        print(f"for example {summary.samples.phone_number} ({summary.samples.customer_name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
