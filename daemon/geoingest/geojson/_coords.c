/*
 * The fused pass over a FeatureCollection's features, compiled.
 *
 * geoingest.geojson.fused checks, rounds and encodes every plain feature. In
 * Python, the checks of each feature and the loop over its positions are most
 * of a worker's time; here they cost little more than reading the numbers.
 * collection() makes exactly the checks of FusedPass.collection, but takes
 * only arrays of plain 2D float positions inside the WGS 84 range: a feature
 * with any other coordinates is handed back untouched, for the Python pass to
 * judge as it does without this module.
 *
 * Each geometry is walked twice: once to check it and note its warnings,
 * changing nothing, then, only if it passed, to round its numbers in place.
 * A feature handed back is therefore exactly as it was decoded.
 *
 * Rounding gives what Python's round(x, precision) gives, to the bit: scale,
 * snap to an integer by adding and taking away 1.5 * 2**52 (half to even in
 * the FPU), scale back. A scaled value within a hair of a half may have
 * crossed it when scaled, and goes through round() itself. The module is
 * compiled with -ffp-contract=off: a fused multiply-add would round
 * x * scale once less than Python does and change the result.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const double SNAP = 6755399441055744.0; /* 1.5 * 2**52 */
static const double NEAR_HALF = 0.4999;

enum verdict { PLAIN, UNUSUAL, DEFER, FAILED = -1 };

/* Strings made once when the module loads. */
static PyObject *COORDINATES_POINTER; /* "/coordinates" */
static PyObject *KEY_TYPE, *KEY_PROPERTIES, *KEY_ID, *KEY_GEOMETRY, *KEY_COORDINATES;
static PyObject *FEATURE_FLAGS[4], *GEOMETRY_FLAGS[7];

typedef struct {
    double scale;    /* 10 ** precision, or 0.0 to keep the numbers */
    int precision;
    int apply;       /* 0: check and note; 1: round in place */
    PyObject *notes; /* the current feature's warnings: (pointer, hole or None) */
} Pass;

/* Where a line's warnings point: nowhere (parent NULL), at parent (child < 0), or below it. */
typedef struct {
    PyObject *parent;
    Py_ssize_t child;
} Where;

/* Whether a position is two floats in range; sets x and y when it is. */
static int
plain_position(PyObject *position, double *x, double *y)
{
    PyObject *first, *second;

    if (!PyList_CheckExact(position) || PyList_GET_SIZE(position) != 2) {
        return 0;
    }
    first = PyList_GET_ITEM(position, 0);
    second = PyList_GET_ITEM(position, 1);
    if (!PyFloat_CheckExact(first) || !PyFloat_CheckExact(second)) {
        return 0;
    }
    *x = PyFloat_AS_DOUBLE(first);
    *y = PyFloat_AS_DOUBLE(second);
    return -180.0 <= *x && *x <= 180.0 && -90.0 <= *y && *y <= 90.0;
}

/* Replace item i of a position with its rounded value. Returns 0, or -1 with an exception. */
static int
round_item(Pass *pass, PyObject *position, Py_ssize_t i)
{
    PyObject *number = PyList_GET_ITEM(position, i), *rounded;
    double value = PyFloat_AS_DOUBLE(number);
    double scaled = value * pass->scale;
    double whole = (scaled + SNAP) - SNAP;
    double off;

    if (whole == 0.0) {
        whole = scaled * 0.0; /* the zero keeps the sign of the number */
    }
    off = scaled - whole;
    if (-NEAR_HALF < off && off < NEAR_HALF) {
        rounded = PyFloat_FromDouble(whole / pass->scale);
    }
    else {
        rounded = PyObject_CallMethod(number, "__round__", "i", pass->precision);
    }
    if (rounded == NULL) {
        return -1;
    }
    PyList_SET_ITEM(position, i, rounded);
    Py_DECREF(number);
    return 0;
}

static int
note(Pass *pass, Where where, PyObject *hole)
{
    PyObject *pointer, *entry;
    int failed;

    if (where.child < 0) {
        pointer = Py_NewRef(where.parent);
    }
    else {
        pointer = PyUnicode_FromFormat("%U/%zd", where.parent, where.child);
    }
    if (pointer == NULL) {
        return -1;
    }
    entry = PyTuple_Pack(2, pointer, hole);
    Py_DECREF(pointer);
    if (entry == NULL) {
        return -1;
    }
    failed = PyList_Append(pass->notes, entry);
    Py_DECREF(entry);
    return failed;
}

/*
 * Check, or round, an array of at least `least` plain 2D positions; a ring
 * (ring_index >= 0) must also be closed. Checking notes antimeridian jumps
 * and, for a ring, a winding against the right-hand rule, summing the area
 * as geoingest.geojson.measures.signed_area2 sums it.
 */
static int
shape_line(Pass *pass, PyObject *positions, Py_ssize_t least, Py_ssize_t ring_index,
           Where where)
{
    double x = 0.0, y = 0.0, x0 = 0.0, y0 = 0.0, previous_x = 0.0, previous_y = 0.0;
    double forward = 0.0, backward = 0.0, area2;
    Py_ssize_t i, count;
    int jumps = 0, wound;

    if (!PyList_CheckExact(positions) || PyList_GET_SIZE(positions) < least) {
        return DEFER;
    }
    count = PyList_GET_SIZE(positions);
    if (pass->apply) {
        for (i = 0; pass->scale != 0.0 && i < count; i++) {
            PyObject *position = PyList_GET_ITEM(positions, i);

            if (round_item(pass, position, 0) < 0 || round_item(pass, position, 1) < 0) {
                return FAILED;
            }
        }
        return PLAIN;
    }
    for (i = 0; i < count; i++) {
        if (!plain_position(PyList_GET_ITEM(positions, i), &x, &y)) {
            return DEFER;
        }
        if (i == 0) {
            x0 = x;
            y0 = y;
        }
        else {
            double step = x - previous_x;

            jumps |= !(-180.0 <= step && step <= 180.0);
            forward += previous_x * y;
            backward += x * previous_y;
        }
        previous_x = x;
        previous_y = y;
    }
    if (ring_index >= 0 && (x0 != x || y0 != y)) {
        return DEFER;
    }
    area2 = forward - backward;
    wound = ring_index >= 0 && area2 != 0.0 && (area2 < 0.0) != (ring_index > 0);
    if (where.parent != NULL && jumps && note(pass, where, Py_None) < 0) {
        return FAILED;
    }
    if (wound && note(pass, where, ring_index > 0 ? Py_True : Py_False) < 0) {
        return FAILED;
    }
    return PLAIN;
}

typedef int (*member_shape)(Pass *, PyObject *, PyObject *, Py_ssize_t);

/* Apply shape to each member of a non-empty list. */
static int
shape_members(Pass *pass, PyObject *members, PyObject *parent, member_shape shape)
{
    Py_ssize_t i;

    if (!PyList_CheckExact(members) || PyList_GET_SIZE(members) == 0) {
        return DEFER;
    }
    for (i = 0; i < PyList_GET_SIZE(members); i++) {
        int verdict = shape(pass, PyList_GET_ITEM(members, i), parent, i);

        if (verdict != PLAIN) {
            return verdict;
        }
    }
    return PLAIN;
}

static int
member_line(Pass *pass, PyObject *positions, PyObject *parent, Py_ssize_t index)
{
    Where where = {parent, index};

    return shape_line(pass, positions, 2, -1, where);
}

static int
member_ring(Pass *pass, PyObject *positions, PyObject *parent, Py_ssize_t index)
{
    Where where = {parent, index};

    return shape_line(pass, positions, 4, index, where);
}

static int
member_polygon(Pass *pass, PyObject *rings, PyObject *parent, Py_ssize_t index)
{
    PyObject *pointer = PyUnicode_FromFormat("%U/%zd", parent, index);
    int verdict;

    if (pointer == NULL) {
        return FAILED;
    }
    verdict = shape_members(pass, rings, pointer, member_ring);
    Py_DECREF(pointer);
    return verdict;
}

static int
is(PyObject *kind, const char *name)
{
    return PyUnicode_CompareWithASCIIString(kind, name) == 0;
}

/* Check, or round, the coordinates of a geometry of the given type. */
static int
shape_geometry(Pass *pass, PyObject *kind, PyObject *coordinates)
{
    Where top = {COORDINATES_POINTER, -1}, nowhere = {NULL, -1};

    if (!PyUnicode_CheckExact(kind)) {
        return UNUSUAL;
    }
    if (is(kind, "Point")) {
        double x, y;

        if (!pass->apply) {
            return plain_position(coordinates, &x, &y) ? PLAIN : DEFER;
        }
        if (pass->scale != 0.0
            && (round_item(pass, coordinates, 0) < 0 || round_item(pass, coordinates, 1) < 0)) {
            return FAILED;
        }
        return PLAIN;
    }
    if (is(kind, "LineString")) {
        return shape_line(pass, coordinates, 2, -1, top);
    }
    if (is(kind, "Polygon")) {
        return shape_members(pass, coordinates, COORDINATES_POINTER, member_ring);
    }
    if (is(kind, "MultiPoint")) {
        if (!PyList_CheckExact(coordinates) || PyList_GET_SIZE(coordinates) == 0) {
            return DEFER;
        }
        return shape_line(pass, coordinates, 0, -1, nowhere);
    }
    if (is(kind, "MultiLineString")) {
        return shape_members(pass, coordinates, COORDINATES_POINTER, member_line);
    }
    if (is(kind, "MultiPolygon")) {
        return shape_members(pass, coordinates, COORDINATES_POINTER, member_polygon);
    }
    return UNUSUAL;
}

/* Look a member up; -1 with an exception set, 0 if absent, 1 with *value borrowed. */
static int
member(PyObject *dict, PyObject *key, PyObject **value)
{
    *value = PyDict_GetItemWithError(dict, key);
    if (*value == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return 1;
}

static int
has_any(PyObject *dict, PyObject *const *keys)
{
    for (; *keys != NULL; keys++) {
        int found = PyDict_Contains(dict, *keys);

        if (found != 0) {
            return found;
        }
    }
    return 0;
}

/* Check one feature, then round it in place. Returns a verdict. */
static int
shape_feature(Pass *pass, PyObject *feature)
{
    PyObject *kind, *properties, *id, *geometry, *coordinates;
    int found, verdict;

    if (!PyDict_CheckExact(feature)) {
        return UNUSUAL;
    }
    if ((found = member(feature, KEY_TYPE, &kind)) < 0) {
        return FAILED;
    }
    if (!found || !PyUnicode_CheckExact(kind) || !is(kind, "Feature")) {
        return UNUSUAL;
    }
    if ((found = has_any(feature, FEATURE_FLAGS)) != 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    if ((found = member(feature, KEY_PROPERTIES, &properties)) <= 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    if (properties != Py_None && !PyDict_CheckExact(properties)) {
        return UNUSUAL;
    }
    if ((found = member(feature, KEY_ID, &id)) < 0) {
        return FAILED;
    }
    if (found && !PyUnicode_CheckExact(id) && !PyLong_CheckExact(id) && !PyFloat_CheckExact(id)) {
        return UNUSUAL;
    }
    if ((found = member(feature, KEY_GEOMETRY, &geometry)) <= 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    if (geometry == Py_None) {
        return PLAIN;
    }
    if (!PyDict_CheckExact(geometry)) {
        return UNUSUAL;
    }
    if ((found = has_any(geometry, GEOMETRY_FLAGS)) != 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    if ((found = member(geometry, KEY_TYPE, &kind)) <= 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    if ((found = member(geometry, KEY_COORDINATES, &coordinates)) <= 0) {
        return found < 0 ? FAILED : UNUSUAL;
    }
    pass->apply = 0;
    verdict = shape_geometry(pass, kind, coordinates);
    if (verdict != PLAIN) {
        return verdict;
    }
    pass->apply = 1;
    return shape_geometry(pass, kind, coordinates);
}

/* Append the current feature's notes to `noted` as (index, pointer, hole), and clear them. */
static int
move_notes(Pass *pass, PyObject *noted, Py_ssize_t index, int keep)
{
    Py_ssize_t n, count = PyList_GET_SIZE(pass->notes);

    for (n = 0; keep && n < count; n++) {
        PyObject *found = PyList_GET_ITEM(pass->notes, n);
        PyObject *entry = Py_BuildValue("(nOO)", index, PyTuple_GET_ITEM(found, 0),
                                        PyTuple_GET_ITEM(found, 1));
        int failed = entry == NULL || PyList_Append(noted, entry) < 0;

        Py_XDECREF(entry);
        if (failed) {
            return -1;
        }
    }
    return count ? PyList_SetSlice(pass->notes, 0, count, NULL) : 0;
}

/* Encode one feature that passed; *encoded is None where orjson refuses it. */
static int
encode(PyObject *dumps, PyObject *feature, PyObject **encoded)
{
    *encoded = PyObject_CallOneArg(dumps, feature);
    if (*encoded != NULL) {
        return 0;
    }
    /* As in Python: what orjson cannot write goes to the careful check. */
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
        return -1;
    }
    PyErr_Clear();
    *encoded = Py_NewRef(Py_None);
    return 0;
}

static int
parse_rounding(PyObject *scale, PyObject *precision, Pass *pass)
{
    long digits;

    pass->scale = PyFloat_AsDouble(scale);
    if (pass->scale == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    digits = PyLong_AsLong(precision);
    if (digits == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (digits < 0 || digits > 17 || pass->scale < 0.0) {
        PyErr_SetString(PyExc_ValueError, "scale must be 10.0 ** precision or 0.0, "
                                          "and precision from 0 to 17");
        return -1;
    }
    pass->precision = (int)digits;
    return 0;
}

PyDoc_STRVAR(collection_doc,
"collection(features, scale, precision, dumps, /)\n--\n\n"
"Check, round and encode the plain features of a collection.\n\n"
"scale is 10.0 ** precision, or 0.0 to check the numbers and keep them.\n"
"Returns (encoded, notes, deferred): each feature encoded with dumps, or None;\n"
"the warnings of encoded features as (index, pointer, hole or None), in order;\n"
"and the indexes of the None entries whose coordinates only the Python pass\n"
"can judge. The other None entries are features the careful check must see.");

static PyObject *
collection(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *features, *dumps, *encoded = NULL, *noted = NULL, *deferred = NULL;
    Pass pass = {0.0, 0, 0, NULL};
    Py_ssize_t i, count;

    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "collection() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    features = args[0];
    dumps = args[3];
    if (!PyList_CheckExact(features)) {
        PyErr_SetString(PyExc_TypeError, "collection() takes a list of features");
        return NULL;
    }
    if (parse_rounding(args[1], args[2], &pass) < 0) {
        return NULL;
    }
    count = PyList_GET_SIZE(features);
    encoded = PyList_New(count);
    noted = PyList_New(0);
    deferred = PyList_New(0);
    pass.notes = PyList_New(0);
    if (encoded == NULL || noted == NULL || deferred == NULL || pass.notes == NULL) {
        goto error;
    }
    for (i = 0; i < count; i++) {
        PyObject *feature = PyList_GET_ITEM(features, i), *bytes = Py_None;
        int verdict = shape_feature(&pass, feature);

        if (verdict == FAILED) {
            goto error;
        }
        if (verdict == PLAIN) {
            if (encode(dumps, feature, &bytes) < 0) {
                goto error;
            }
        }
        else {
            Py_INCREF(bytes);
        }
        PyList_SET_ITEM(encoded, i, bytes);
        if (verdict == DEFER) {
            PyObject *index = PyLong_FromSsize_t(i);
            int failed = index == NULL || PyList_Append(deferred, index) < 0;

            Py_XDECREF(index);
            if (failed) {
                goto error;
            }
        }
        if (move_notes(&pass, noted, i, bytes != Py_None) < 0) {
            goto error;
        }
    }
    Py_DECREF(pass.notes);
    return Py_BuildValue("(NNN)", encoded, noted, deferred);

error:
    Py_XDECREF(encoded);
    Py_XDECREF(noted);
    Py_XDECREF(deferred);
    Py_XDECREF(pass.notes);
    return NULL;
}

PyDoc_STRVAR(colons_doc,
"colons(data, /)\n--\n\n"
"Count the colons in a bytes object: bytes.count(b':'), in a loop the compiler\n"
"can vectorize (the duplicate-name check counts every document's colons twice).");

static PyObject *
colons(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "colons() takes bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data), count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        count += p[i] == ':';
    }
    return PyLong_FromSsize_t(count);
}

static PyMethodDef methods[] = {
    {"collection", (PyCFunction)(void (*)(void))collection, METH_FASTCALL, collection_doc},
    {"colons", (PyCFunction)colons, METH_O, colons_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geoingest.geojson._coords",
    .m_doc = "The fused pass over a FeatureCollection's features, compiled.",
    .m_size = 0,
    .m_methods = methods,
};

static int
intern_all(PyObject **slots, const char *const *names)
{
    for (; *names != NULL; names++, slots++) {
        if (*slots == NULL && (*slots = PyUnicode_InternFromString(*names)) == NULL) {
            return -1;
        }
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__coords(void)
{
    static const char *const feature_flags[] = {"features", "bbox", "crs", NULL};
    static const char *const geometry_flags[] = {
        "geometry", "properties", "features", "geometries", "bbox", "crs", NULL};
    static const char *const pointer[] = {"/coordinates", NULL};
    static const char *const keys[] = {"type", "properties", "id", "geometry", "coordinates",
                                       NULL};
    PyObject *key_slots[5] = {NULL};

    if (intern_all(FEATURE_FLAGS, feature_flags) < 0
        || intern_all(GEOMETRY_FLAGS, geometry_flags) < 0
        || intern_all(&COORDINATES_POINTER, pointer) < 0 || intern_all(key_slots, keys) < 0) {
        return NULL;
    }
    KEY_TYPE = key_slots[0];
    KEY_PROPERTIES = key_slots[1];
    KEY_ID = key_slots[2];
    KEY_GEOMETRY = key_slots[3];
    KEY_COORDINATES = key_slots[4];
    return PyModuleDef_Init(&module);
}
