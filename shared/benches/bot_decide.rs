//! The bot decision for one inbound message (SPEC §8): the tenant's bots compiled once, as
//! the runner keeps them, then `decide` per customer message. Issue 13's goal: a keyword
//! bot with 400 keywords decides in ≤ 50 µs per message. `make bench` runs it and prints
//! the medians against that goal (`infra/bench_report.py`).
//!
//! Each `bot_decide_*` iteration decides one message, taking the next of a mix of ~100
//! character customer messages (English, Spanish, Portuguese, French, German, Italian;
//! some match a keyword early, some late, some not at all, a few are one keyword), so the
//! median is a per-message figure averaged over the mix. The tenant has, beside the
//! 400-keyword bot, a regex bot (an order number), a first-message bot and an
//! outside-hours bot, all enabled on every channel.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use shared::domain::bot::{
    ActiveBot, Bot, BotInput, BotRun, CompiledBot, Decision, InboundTurn, SendAllowance, decide,
    normalize,
};
use shared::domain::channel::ChannelType;

/// Keywords as an admin would type them (case and accents as written), comma-separated by
/// language; more than 400, so that 400 distinct once folded can be taken.
const KEYWORDS: [&str; 5] = [
    // English
    "refund, return label, exchange, warranty, invoice, receipt, delivery, shipping, tracking, \
     parcel, courier, cancel my order, cancellation, subscription, renewal, billing, \
     payment failed, overcharged, chargeback, discount, coupon, voucher, promo code, gift card, \
     loyalty points, membership, account locked, password reset, login problem, two-factor, \
     verification code, unsubscribe, complaint, damaged, broken, defective, missing item, \
     wrong size, wrong colour, out of stock, backorder, preorder, restock, price match, \
     installment, financing, credit card, debit card, bank transfer, paypal, apple pay, \
     google pay, checkout, shopping cart, order number, order status, where is my order, \
     estimated arrival, express shipping, same day, pickup point, click and collect, \
     store hours, opening hours, holiday hours, store location, nearest store, appointment, \
     booking, reschedule, technician, installation, repair, spare parts, user guide, firmware, \
     battery, charger, screen cracked, not turning on, overheating, bluetooth, wifi, pairing, \
     factory reset, serial number, proof of purchase, size chart, measurements, allergy, \
     ingredients, gluten free, vegan, nutrition, expiry date, product recall, safety notice, \
     speak to a manager, customer service, late delivery, never arrived, stolen package",
    // Spanish
    "reembolso, devolución, cambio de talla, garantía, factura, envío, seguimiento, paquete, \
     mensajería, cancelar pedido, suscripción, renovación, cobro indebido, doble cargo, \
     descuento, cupón, código promocional, tarjeta regalo, puntos de fidelidad, contraseña, \
     cuenta bloqueada, código de verificación, darme de baja, reclamación, queja, dañado, roto, \
     defectuoso, falta un artículo, talla equivocada, color equivocado, agotado, cita previa, \
     técnico, instalación, reparación, repuestos, manual de usuario, batería, cargador, \
     pantalla rota, no enciende, se calienta, número de serie, comprobante, guía de tallas, \
     ingredientes, sin gluten, fecha de caducidad, atención al cliente, horario de apertura, \
     tienda más cercana, recogida en tienda, entrega urgente, retraso, dónde está mi pedido, \
     número de pedido, estado del pedido, transferencia bancaria, tarjeta de crédito, \
     pago a plazos, financiación, presupuesto, cotización, precio, oferta, promoción, rebajas, \
     envío gratis, dirección de entrega, cambiar dirección, facturación, datos fiscales, \
     hablar con un asesor, no me llegó, me cobraron dos veces, producto equivocado, \
     caja abierta, talla grande, talla pequeña, zapatillas, chaqueta, pantalón, vestido, \
     camiseta, mochila, auriculares, cafetera, aspiradora, lavadora, frigorífico, colchón, \
     almohada, sofá, muebles de jardín, bicicleta, patinete, juguetes, pañales",
    // Portuguese
    "devolução, troca, garantia, nota fiscal, entrega, rastreamento, encomenda, transportadora, \
     cancelamento, assinatura, cobrança indevida, desconto, cupom, cartão de crédito, boleto, \
     pix, parcelamento, senha, conta bloqueada, reclamação, avariado, quebrado, com defeito, \
     tamanho errado, cor errada, esgotado, pré-venda, agendamento, instalação, conserto, \
     peças de reposição, manual do usuário, bateria, carregador, tela quebrada, não liga, \
     esquentando, número de série, comprovante de compra, tabela de medidas, sem glúten, \
     data de validade, atendimento, falar com atendente, horário de funcionamento, \
     loja mais próxima, retirada na loja, entrega expressa, atraso, meu pedido, \
     número do pedido, status do pedido, transferência, cartão de débito, orçamento, preço, \
     promoção relâmpago, frete grátis, endereço de entrega, mudar endereço, não recebi, \
     cobraram duas vezes, produto errado, caixa aberta, tênis, jaqueta, calça, camisa, \
     mochila escolar, fones de ouvido, cafeteira, aspirador, máquina de lavar, geladeira, \
     colchão, travesseiro, móveis, bicicleta elétrica, brinquedos, fraldas, chinelo, \
     óculos de sol, relógio, perfume, maquiagem, protetor solar, vale-presente",
    // French
    "remboursement, retour, échange, facture, livraison, suivi de colis, colis, transporteur, \
     annuler ma commande, abonnement, résiliation, prélèvement, remise, code promo, \
     carte cadeau, points de fidélité, mot de passe, compte bloqué, réclamation, endommagé, \
     cassé, défectueux, article manquant, mauvaise taille, mauvaise couleur, rupture de stock, \
     précommande, rendez-vous, technicien, réparation, pièces détachées, mode d'emploi, \
     batterie, chargeur, écran fissuré, ne s'allume pas, surchauffe, numéro de série, \
     preuve d'achat, guide des tailles, sans gluten, date de péremption, service client, \
     parler à un conseiller, horaires d'ouverture, magasin le plus proche, retrait en magasin, \
     livraison express, en retard, où est ma commande, numéro de commande, état de ma commande, \
     virement, carte bancaire, paiement en plusieurs fois, devis, tarif, soldes, \
     livraison gratuite, adresse de livraison, changer d'adresse, jamais reçu, débité deux fois, \
     mauvais produit, emballage abîmé, baskets, veste, pantalon, robe, t-shirt, sac à dos, \
     écouteurs, cafetière, aspirateur, lave-linge, réfrigérateur, matelas, oreiller, canapé, \
     vélo électrique, trottinette, jouets, couches, lunettes de soleil, montre, maquillage, \
     crème solaire",
    // German
    "rückerstattung, rücksendung, umtausch, gewährleistung, rechnung, lieferung, sendungsverfolgung, \
     paket, stornierung, bestellung stornieren, kündigung, abonnement kündigen, lastschrift, \
     gutschein, rabattcode, geschenkkarte, passwort vergessen, konto gesperrt, reklamation, \
     beschwerde, beschädigt, kaputt, fehlerhaft, artikel fehlt, falsche größe, falsche farbe, \
     nicht vorrätig, vorbestellung, termin vereinbaren, techniker, reparatur, ersatzteile, \
     bedienungsanleitung, akku, ladegerät, display gesprungen, geht nicht an, überhitzt, \
     seriennummer, kaufbeleg, größentabelle, glutenfrei, haltbarkeitsdatum, kundenservice, \
     öffnungszeiten, nächste filiale, abholung in der filiale, expressversand, verspätet, \
     wo ist meine bestellung, bestellnummer, bestellstatus, überweisung, kreditkarte, \
     ratenzahlung, kostenvoranschlag, versandkostenfrei, lieferadresse, adresse ändern, \
     nie angekommen, doppelt abgebucht",
];

/// Customer messages, most about 100 characters.
const MESSAGES: &[&str] = &[
    // A keyword first or early.
    "Refund please: the blender I bought on Saturday stopped working after two days of normal use.",
    "Estado del pedido, por favor: lo hice el lunes y todavía no tengo noticias, ¿me podéis ayudar?",
    "Colis endommagé reçu hier soir : comment puis-je obtenir un remboursement, s'il vous plaît ?",
    "Olá! Meu pedido ainda não chegou e já se passaram oito dias, vocês podem verificar por favor?",
    // A keyword late.
    "Hi, I wanted to ask something about the jacket I got for my brother, he would like an exchange.",
    "Buenas tardes, compré unas cosas para mi madre la semana pasada y ahora necesito la factura.",
    "Bonsoir, ma fille a commandé plusieurs choses pour son anniversaire et voudrait un échange.",
    "Oi, tudo bem? Comprei umas coisas para a minha mãe semana passada e preciso da nota fiscal.",
    // An order number (the regex bot), no keyword.
    "Hello, could you look at order #4821937 from last month? My sister placed it for our family.",
    // Nothing to match.
    "Good morning! Just wanted to say the team at your downtown shop was lovely to us yesterday.",
    "Guten Tag, ich wollte nur kurz Danke sagen für die freundliche Beratung gestern, wirklich toll.",
    "Ciao, volevo solo ringraziarvi per la gentilezza del personale ieri pomeriggio, siete bravi.",
    "Hey, quick question: do you folks sponsor local football clubs? Our kids team is looking.",
    "Buenos días, solo quería felicitaros por el nuevo local, es muy bonito y luminoso. Saludos",
    "Salut ! Je voulais juste vous dire merci pour l'accueil chaleureux de samedi, à bientôt.",
    "Bom dia, só queria dizer que adorei a visita de ontem na unidade do centro, obrigada!",
    // One keyword as the whole message (the exact bot matches these).
    "Refund!",
    "  Garantía ",
    "Order status?",
    "Livraison",
];

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, minute, 0)
        .single()
        .expect("a valid time")
}

/// The 400 distinct keywords (distinct once folded).
fn keywords() -> Vec<&'static str> {
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = KEYWORDS
        .iter()
        .flat_map(|language| language.split(", "))
        .filter(|k| seen.insert(normalize(k)))
        .take(400)
        .collect();
    assert_eq!(distinct.len(), 400, "400 distinct keywords");
    distinct
}

fn compile(id: &str, input: Value) -> CompiledBot {
    let input: BotInput = serde_json::from_value(input).expect("a bot definition");
    let bot = input
        .into_bot(id, &ChannelType::ALL, None, "2026-11-30T10:00:00Z")
        .expect("a valid bot");
    CompiledBot::new(bot).expect("it compiles")
}

fn keyword_bot(kind: &str) -> Bot {
    let input: BotInput = serde_json::from_value(json!({
        "name": "Support menu",
        "priority": 10,
        "trigger": {"type": "keyword", "keywords": keywords(), "match": kind},
        "steps": [
            {"id": "hello", "type": "reply", "text": "Hi! I'm the support assistant.", "next": "menu"},
            {"id": "menu", "type": "ask", "text": "What can I help you with?", "options": [
                {"id": "orders", "title": "My order", "next": "orders"},
                {"id": "returns", "title": "Returns and refunds", "next": "returns"},
                {"id": "person", "title": "Talk to a person", "next": "person"}
            ]},
            {"id": "orders", "type": "reply", "text": "Your orders are at https://example.com/orders"},
            {"id": "returns", "type": "reply", "text": "Start a return at https://example.com/returns"},
            {"id": "person", "type": "handover", "text": "Connecting you with a colleague."}
        ]
    }))
    .expect("a bot definition");
    input
        .into_bot(
            &format!("kw-{kind}"),
            &ChannelType::ALL,
            None,
            "2026-11-30T10:00:00Z",
        )
        .expect("a valid bot")
}

/// The tenant's bots with the keyword bot matching as `kind`.
fn tenant_bots(kind: &str) -> Vec<CompiledBot> {
    let reply = |text: &str| json!([{"id": "only", "type": "reply", "text": text}]);
    vec![
        CompiledBot::new(keyword_bot(kind)).expect("it compiles"),
        compile(
            "order-number",
            json!({
                "name": "Order number",
                "priority": 5,
                "trigger": {"type": "regex",
                    "pattern": r"\b(?:order|pedido|commande|encomenda)\s*(?:n[o°º.]*\s*)?#?\s*\d{6,10}\b"},
                "steps": reply("Looking up that order for you."),
            }),
        ),
        compile(
            "welcome",
            json!({
                "name": "Welcome",
                "priority": 1,
                "trigger": {"type": "first_message"},
                "steps": reply("Welcome! An agent will be with you shortly."),
            }),
        ),
        compile(
            "after-hours",
            json!({
                "name": "After hours",
                "priority": 0,
                "trigger": {"type": "outside_hours"},
                "steps": reply("We are closed now; we open at 9."),
            }),
        ),
    ]
}

fn inbound(i: usize, text: &str) -> InboundTurn<'_> {
    InboundTurn {
        channel: ChannelType::Whatsapp,
        channel_id: "ch-wa",
        customer_id: "cu-1",
        text: Some(text),
        answer: None,
        at: at(30),
        // Every seventh message opens its conversation.
        first_message: i % 7 == 3,
        business_open: true,
        agent_caught_up: false,
    }
}

const OPEN: SendAllowance = SendAllowance {
    free_form: true,
    replies_left: usize::MAX,
};

/// Which bot each message of the mix starts, as printed once before measuring.
fn describe(kind: &str, bots: &[CompiledBot]) {
    let idle = BotRun::default();
    let mut starts = std::collections::BTreeMap::<String, usize>::new();
    for (i, text) in MESSAGES.iter().enumerate() {
        let who = match decide(bots, &idle, &inbound(i, text), OPEN) {
            Decision::Turn(t) => t.bot_id,
            Decision::Nothing => "none".to_owned(),
        };
        *starts.entry(who).or_default() += 1;
    }
    eprintln!(
        "bot_decide_{kind}: {} messages ({} characters on average) start {starts:?}",
        MESSAGES.len(),
        MESSAGES.iter().map(|m| m.chars().count()).sum::<usize>() / MESSAGES.len()
    );
}

fn decide_per_message(c: &mut Criterion) {
    for kind in ["contains", "starts_with", "exact"] {
        let bots = tenant_bots(kind);
        describe(kind, &bots);
        let idle = BotRun::default();
        let turns: Vec<InboundTurn<'_>> = MESSAGES
            .iter()
            .enumerate()
            .map(|(i, t)| inbound(i, t))
            .collect();
        let mut next = 0usize;
        c.bench_function(&format!("bot_decide_{kind}"), |b| {
            b.iter(|| {
                let message = &turns[next % turns.len()];
                next = next.wrapping_add(1);
                black_box(decide(black_box(&bots), &idle, black_box(message), OPEN))
            })
        });
    }
}

/// A running keyword bot waiting at its question: the customer answers with a button id,
/// the option's number or title, an exit keyword, or something else (asked again).
fn decide_waiting(c: &mut Criterion) {
    let bots = tenant_bots("contains");
    let run = BotRun {
        active: Some(ActiveBot {
            bot_id: "kw-contains".to_owned(),
            name: "Support menu".to_owned(),
            since: at(0),
            step: "menu".to_owned(),
            asked: 1,
            waiting_since: at(0),
            timeout_minutes: 30,
        }),
        blocked: false,
        version: 3,
    };
    let answers: [(&str, Option<&str>); 5] = [
        ("My order", Some("orders")),
        ("2", None),
        ("Returns and refunds", None),
        ("Agent!", None),
        (MESSAGES[0], None),
    ];
    let turns: Vec<InboundTurn<'_>> = answers
        .iter()
        .enumerate()
        .map(|(i, (text, answer))| InboundTurn {
            answer: *answer,
            ..inbound(i, text)
        })
        .collect();
    let mut next = 0usize;
    c.bench_function("bot_decide_waiting", |b| {
        b.iter(|| {
            let message = &turns[next % turns.len()];
            next = next.wrapping_add(1);
            black_box(decide(black_box(&bots), &run, black_box(message), OPEN))
        })
    });
}

/// Compiling the 400-keyword bot (`contains`: one alternation regex), once per bot version
/// in the runner.
fn compile_keywords(c: &mut Criterion) {
    let bot = keyword_bot("contains");
    // Milliseconds each: fewer samples keep it within the bench's few seconds.
    let mut group = c.benchmark_group("bot_compile_400_keywords");
    group.sample_size(10);
    group.bench_function("contains", |b| {
        b.iter_batched(
            || bot.clone(),
            |bot| CompiledBot::new(bot).expect("it compiles"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // A few seconds in all: the figures are microseconds and steady.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = decide_per_message, decide_waiting, compile_keywords
}
criterion_main!(benches);
